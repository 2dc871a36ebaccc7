-- SalesFlow demo data, generated set-based inside the server (no row-by-row inserts).
-- Sizes come from session settings demo.* that demo/loader.py sets per scale, so this file also
-- runs from psql after e.g. `SET demo.users = 20; SET demo.events = 30000; ...`.
-- Users are skewed (a few heavy users own most rows: user index = n * random()^2.5), time spreads
-- over six months with more recent activity, statuses follow plausible proportions.
-- Each "-- step:" line starts one statement the loader runs and reports on.

-- step: seed
SELECT setseed(0.4242);

-- step: users
INSERT INTO users (id, idx, org_id, email, name, created_at)
SELECT md5('user-' || g)::uuid, g, md5('org-' || (g % 8))::uuid,
       'rep' || g || '@salesflow.example', 'Sales Rep ' || g,
       now() - interval '400 days' + g * interval '1 day'
FROM generate_series(0, current_setting('demo.users')::int - 1) AS g;

-- step: contacts
INSERT INTO contacts (user_id, org_id, name, email, phone, company, status, source, created_at, updated_at)
SELECT u.id, u.org_id, 'Contact ' || s.g, 'contact' || s.g || '@example.com',
       CASE WHEN s.r2 < 0.6 THEN '+49 151 ' || lpad((s.g % 10000000)::text, 7, '0') END,
       'Company ' || (s.g % 3000),
       CASE WHEN s.r2 < 0.85 THEN 'active' WHEN s.r2 < 0.95 THEN 'inactive' ELSE 'archived' END,
       (ARRAY['linkedin', 'instagram', 'website', 'referral', 'event'])[1 + (s.g % 5)],
       s.created_at, s.created_at + interval '3 days' * s.r2
FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx,
             random() AS r2, now() - interval '180 days' * power(random(), 1.3) AS created_at
      FROM generate_series(1, current_setting('demo.contacts')::int) AS g) AS s
JOIN users u ON u.idx = s.uidx;

-- step: contact pools
CREATE TEMP TABLE contact_pool AS
SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS rn FROM contacts;
CREATE INDEX ON contact_pool (user_id, rn);
CREATE TEMP TABLE contact_counts AS SELECT user_id, count(*) AS n FROM contacts GROUP BY user_id;

-- step: leads
INSERT INTO leads (user_id, contact_id, name, email, phone, company, source, status, p_score,
                   last_scored_at, next_follow_up, created_at, updated_at)
SELECT s.user_id, c.id, 'Lead ' || s.g, 'lead' || s.g || '@prospect.example',
       CASE WHEN s.r < 0.7 THEN '+49 160 ' || lpad((s.g % 10000000)::text, 7, '0') END,
       'Prospect ' || (s.g % 5000),
       (ARRAY['linkedin', 'instagram', 'website', 'referral', 'cold_outreach'])[1 + (s.g % 5)],
       CASE WHEN s.r < 0.40 THEN 'new' WHEN s.r < 0.65 THEN 'contacted'
            WHEN s.r < 0.80 THEN 'qualified' WHEN s.r < 0.88 THEN 'won' ELSE 'lost' END,
       CASE WHEN s.r3 < 0.7 THEN round((100 * power(random(), 1.6))::numeric, 2) END,
       CASE WHEN s.r3 < 0.7 THEN s.created_at + (now() - s.created_at) * random() END,
       CASE WHEN s.r3 > 0.6 THEN now() + interval '30 days' * (random() - 0.3) END,
       s.created_at, s.created_at + (now() - s.created_at) * random()
FROM (SELECT raw.*, u.id AS user_id
      FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx,
                   random() AS r, random() AS r3, random() AS rc,
                   now() - interval '180 days' * power(random(), 1.3) AS created_at
            FROM generate_series(1, current_setting('demo.leads')::int) AS g) AS raw
      JOIN users u ON u.idx = raw.uidx) AS s
JOIN contact_counts cc ON cc.user_id = s.user_id
LEFT JOIN contact_pool c ON c.user_id = s.user_id AND c.rn = 1 + floor(s.rc * cc.n)::int;

-- step: lead pools
CREATE TEMP TABLE lead_pool AS
SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS rn FROM leads;
CREATE INDEX ON lead_pool (user_id, rn);
CREATE TEMP TABLE lead_counts AS SELECT user_id, count(*) AS n FROM leads GROUP BY user_id;

-- step: message_events
INSERT INTO message_events (user_id, contact_id, lead_id, channel, direction, autopilot_status,
                            template_version, persona_variant, normalized_text, created_at)
SELECT s.user_id, c.id, l.id, s.channel, s.direction,
       CASE WHEN s.direction = 'inbound' THEN 'received'
            WHEN s.r < 0.08 THEN 'pending' WHEN s.r < 0.80 THEN 'sent'
            WHEN s.r < 0.90 THEN 'skipped' WHEN s.r < 0.95 THEN 'failed' ELSE 'draft' END,
       CASE WHEN s.direction = 'outbound' THEN 'v' || (1 + floor(s.r * 6)::int) END,
       CASE WHEN s.direction = 'outbound' THEN (ARRAY['consultant', 'friendly', 'direct', 'expert'])[1 + floor(s.r2 * 4)::int] END,
       (ARRAY['thanks for reaching out', 'can we schedule a call', 'here is the proposal',
              'following up on our chat', 'not interested right now', 'sounds great, send details',
              'what does pricing look like', 'let me check with my team'])[1 + floor(s.r2 * 8)::int]
         || ' ' || left(md5(s.g::text), 12),
       s.created_at
FROM (SELECT raw.*, u.id AS user_id
      FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx,
             random() AS r, random() AS r2, random() AS rc, random() AS rl,
             (ARRAY['instagram', 'linkedin', 'whatsapp', 'email'])[1 + floor(power(random(), 1.5) * 4)::int] AS channel,
             CASE WHEN random() < 0.38 THEN 'inbound' ELSE 'outbound' END AS direction,
             now() - interval '180 days' * power(random(), 1.6) AS created_at
            FROM generate_series(1, current_setting('demo.events')::int) AS g) AS raw
      JOIN users u ON u.idx = raw.uidx) AS s
JOIN contact_counts cc ON cc.user_id = s.user_id
JOIN lead_counts lc ON lc.user_id = s.user_id
LEFT JOIN contact_pool c ON c.user_id = s.user_id AND c.rn = 1 + floor(s.rc * cc.n)::int AND s.rc < 0.9
LEFT JOIN lead_pool l ON l.user_id = s.user_id AND l.rn = 1 + floor(s.rl * lc.n)::int AND s.rl < 0.6;

-- step: crm_notes
INSERT INTO crm_notes (user_id, contact_id, lead_id, note_type, content, created_at)
SELECT s.user_id, CASE WHEN s.r < 0.6 THEN c.id END, CASE WHEN s.r >= 0.4 THEN l.id END,
       (ARRAY['note', 'call', 'meeting', 'email', 'auto_summary'])[1 + floor(s.r2 * 5)::int],
       'Note ' || s.g || ': ' || md5(s.g::text), s.created_at
FROM (SELECT raw.*, u.id AS user_id
      FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx, random() AS r, random() AS r2, random() AS rc, random() AS rl,
             now() - interval '180 days' * power(random(), 1.3) AS created_at
            FROM generate_series(1, current_setting('demo.notes')::int) AS g) AS raw
      JOIN users u ON u.idx = raw.uidx) AS s
JOIN contact_counts cc ON cc.user_id = s.user_id
JOIN lead_counts lc ON lc.user_id = s.user_id
LEFT JOIN contact_pool c ON c.user_id = s.user_id AND c.rn = 1 + floor(s.rc * cc.n)::int
LEFT JOIN lead_pool l ON l.user_id = s.user_id AND l.rn = 1 + floor(s.rl * lc.n)::int;

-- step: rlhf_feedback_sessions
INSERT INTO rlhf_feedback_sessions (user_id, outcome, composite_reward, created_at)
SELECT u.id,
       CASE WHEN s.r < 0.05 THEN 'converted' WHEN s.r < 0.25 THEN 'positive_reply'
            WHEN s.r < 0.40 THEN 'negative_reply' WHEN s.r < 0.85 THEN 'no_reply' ELSE 'neutral' END,
       round((CASE WHEN s.r < 0.05 THEN 1.0 WHEN s.r < 0.25 THEN 0.6 WHEN s.r < 0.40 THEN -0.4
                   WHEN s.r < 0.85 THEN -0.1 ELSE 0.0 END + (random() - 0.5) * 0.2)::numeric, 3),
       s.created_at
FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx,
             random() AS r, now() - interval '180 days' * power(random(), 1.3) AS created_at
      FROM generate_series(1, current_setting('demo.sessions')::int) AS g) AS s
JOIN users u ON u.idx = s.uidx;

-- step: dm_conversations
INSERT INTO dm_conversations (user_id, lead_id, contact_id, platform, status, priority_score,
                              unread_count, last_message_at, created_at, updated_at)
SELECT s.user_id, l.id, c.id,
       (ARRAY['instagram', 'linkedin', 'whatsapp', 'facebook'])[1 + floor(s.r2 * 4)::int],
       CASE WHEN s.r < 0.35 THEN 'open' WHEN s.r < 0.55 THEN 'pending'
            WHEN s.r < 0.90 THEN 'closed' ELSE 'archived' END,
       round((100 * random())::numeric, 2), floor(power(random(), 3) * 12)::int,
       s.created_at + (now() - s.created_at) * random(), s.created_at, s.created_at
FROM (SELECT raw.*, u.id AS user_id
      FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx, random() AS r, random() AS r2, random() AS rc, random() AS rl,
             now() - interval '180 days' * power(random(), 1.3) AS created_at
            FROM generate_series(1, current_setting('demo.conversations')::int) AS g) AS raw
      JOIN users u ON u.idx = raw.uidx) AS s
JOIN contact_counts cc ON cc.user_id = s.user_id
JOIN lead_counts lc ON lc.user_id = s.user_id
LEFT JOIN contact_pool c ON c.user_id = s.user_id AND c.rn = 1 + floor(s.rc * cc.n)::int
LEFT JOIN lead_pool l ON l.user_id = s.user_id AND l.rn = 1 + floor(s.rl * lc.n)::int;

-- step: dm_messages
INSERT INTO dm_messages (conversation_id, user_id, direction, content, created_at)
SELECT c.id, c.user_id, CASE WHEN random() < 0.5 THEN 'inbound' ELSE 'outbound' END,
       'dm ' || md5(g::text), c.created_at + (now() - c.created_at) * random()
FROM (SELECT g, 1 + floor(power(random(), 1.5) * current_setting('demo.conversations')::int)::int AS pick
      FROM generate_series(1, current_setting('demo.dm_messages')::int) AS g) AS s
JOIN (SELECT id, user_id, created_at, row_number() OVER (ORDER BY id) AS rn FROM dm_conversations) AS c
  ON c.rn = s.pick;

-- step: lead details
INSERT INTO lead_verifications (lead_id, v_score, is_duplicate, email_valid, verified_at)
SELECT id, CASE WHEN random() < 0.9 THEN round((40 + 60 * random())::numeric, 2) END,
       random() < 0.07, random() < 0.85, created_at + interval '1 hour'
FROM leads WHERE random() < 0.8;
INSERT INTO lead_intents (lead_id, i_score, intent_topic, last_activity_at)
SELECT id, round((100 * power(random(), 1.4))::numeric, 2),
       (ARRAY['pricing', 'demo_request', 'integration', 'competitor', 'hiring'])[1 + floor(random() * 5)::int],
       created_at + (now() - created_at) * random()
FROM leads WHERE random() < 0.7;
INSERT INTO lead_enrichments (lead_id, e_score, company_name, industry, employee_count, enriched_at)
SELECT id, round((100 * random())::numeric, 2), company,
       (ARRAY['saas', 'retail', 'finance', 'health', 'manufacturing', 'agency'])[1 + floor(random() * 6)::int],
       (10 * power(10, 3 * random()))::int, created_at + interval '2 hours'
FROM leads WHERE random() < 0.6;

-- step: deals
INSERT INTO deals (org_id, user_id, contact_id, title, stage, value, expected_close_date, created_at, updated_at)
SELECT s.org_id, s.user_id, c.id, 'Deal ' || s.g,
       CASE WHEN s.r < 0.30 THEN 'lead' WHEN s.r < 0.50 THEN 'qualified' WHEN s.r < 0.65 THEN 'proposal'
            WHEN s.r < 0.75 THEN 'negotiation' WHEN s.r < 0.87 THEN 'won' ELSE 'lost' END,
       round((500 + 50000 * power(random(), 3))::numeric, 2),
       (s.created_at + interval '60 days' * random())::date, s.created_at, s.created_at
FROM (SELECT raw.*, u.id AS user_id, u.org_id
      FROM (SELECT g, floor(current_setting('demo.users')::int * power(random(), 2.5))::int AS uidx, random() AS r, random() AS rc,
             now() - interval '180 days' * power(random(), 1.3) AS created_at
            FROM generate_series(1, current_setting('demo.deals')::int) AS g) AS raw
      JOIN users u ON u.idx = raw.uidx) AS s
JOIN contact_counts cc ON cc.user_id = s.user_id
LEFT JOIN contact_pool c ON c.user_id = s.user_id AND c.rn = 1 + floor(s.rc * cc.n)::int;

-- step: tracking events
INSERT INTO web_tracking_events (lead_id, event_type, url, "timestamp")
SELECT l.id, (ARRAY['page_view', 'page_view', 'page_view', 'pricing_view', 'form_start', 'download'])[1 + floor(random() * 6)::int],
       'https://salesflow.example/' || (ARRAY['', 'pricing', 'features', 'blog/post-' || (s.g % 40), 'docs', 'contact'])[1 + floor(random() * 6)::int],
       now() - interval '90 days' * power(random(), 1.5)
FROM (SELECT g, 1 + floor(power(random(), 2) * current_setting('demo.leads')::int)::int AS pick
      FROM generate_series(1, current_setting('demo.web_events')::int) AS g) AS s
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM leads) AS l ON l.rn = s.pick;
INSERT INTO social_engagement_events (lead_id, platform, engagement_type, created_at)
SELECT l.id, (ARRAY['linkedin', 'instagram', 'x', 'facebook'])[1 + floor(random() * 4)::int],
       (ARRAY['like', 'comment', 'share', 'follow', 'mention'])[1 + floor(power(random(), 2) * 5)::int],
       now() - interval '90 days' * power(random(), 1.5)
FROM (SELECT g, 1 + floor(power(random(), 2) * current_setting('demo.leads')::int)::int AS pick
      FROM generate_series(1, current_setting('demo.social_events')::int) AS g) AS s
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM leads) AS l ON l.rn = s.pick;

-- Phase 2 of the optimization plan (sections 3.3 and 5.1): three materialized views for the
-- analytics dashboards, each with the unique index REFRESH ... CONCURRENTLY needs, and one refresh
-- function. Fixed from the plan, where its SQL fails or misbehaves:
-- - the plan refreshes mv_rlhf_sessions_daily CONCURRENTLY but gives it no unique index, so every
--   refresh fails; session_date is unique per row, so it gets a unique index;
-- - the plan defines refresh_rlhf_daily_mv twice (RETURNS TRIGGER in 3.3, RETURNS VOID in 5.1);
--   both cannot exist, and as a per-row trigger a 10-row insert refreshes the view 10 times
--   (1.3 s instead of 0.6 ms). One VOID function for pg_cron or DB Pulse, no trigger;
-- - mv_template_performance (3.3) filtered template_version IS NOT NULL, which drops every inbound
--   message, so its reply rate was always 0, and its correlated subquery was not scoped to the
--   user. Reply rate here: of a template's sent messages, the share answered, in percent. A sent
--   message counts as answered when the next message of the same conversation (user, contact,
--   channel; by time) is an inbound one. Each inbound message answers at most one outbound (the
--   one just before it), so the rate cannot exceed 100 %; messages without a contact cannot be
--   matched to an answer and count as unanswered;
-- - mv_hot_leads (5.1) had no user_id, and materialized views bypass row-level security: it showed
--   every tenant's lead names, e-mails and phones to anyone who can read it. It carries user_id,
--   leaves out e-mail and phone, and is readable only by its owner (grant it to the backend role).

CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_rlhf_sessions_daily AS
SELECT date(created_at)                                        AS session_date,
       count(*)                                                AS total_sessions,
       count(DISTINCT user_id)                                 AS active_users,
       count(*) FILTER (WHERE outcome = 'converted')           AS conversions,
       count(*) FILTER (WHERE outcome = 'positive_reply')      AS positive_replies,
       avg(composite_reward)                                   AS avg_reward,
       sum(composite_reward)                                   AS reward_sum
FROM public.rlhf_feedback_sessions
GROUP BY date(created_at);

CREATE UNIQUE INDEX IF NOT EXISTS mv_rlhf_sessions_daily_date
  ON public.mv_rlhf_sessions_daily (session_date);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_template_performance AS
WITH conversation AS (
    SELECT user_id, contact_id, channel, direction, autopilot_status, template_version,
           persona_variant,
           lead(direction) OVER (PARTITION BY user_id, contact_id, channel
                                 ORDER BY created_at, id) AS next_direction
    FROM public.message_events
),
outbound AS (
    SELECT user_id, template_version, persona_variant, channel,
           count(*)                                                AS total_messages,
           count(*) FILTER (WHERE autopilot_status = 'sent')       AS sent_count,
           count(*) FILTER (WHERE autopilot_status = 'sent' AND contact_id IS NOT NULL
                              AND next_direction = 'inbound')      AS replies_received
    FROM conversation
    WHERE direction = 'outbound' AND template_version IS NOT NULL
    GROUP BY user_id, template_version, persona_variant, channel
)
SELECT user_id, template_version, persona_variant, channel, total_messages, sent_count,
       replies_received,
       round(100.0 * replies_received / nullif(sent_count, 0), 2) AS reply_rate
FROM outbound;

CREATE UNIQUE INDEX IF NOT EXISTS mv_template_performance_key
  ON public.mv_template_performance (user_id, template_version, persona_variant, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_hot_leads AS
SELECT l.id, l.user_id, l.name, l.company, l.p_score, l.status, l.last_scored_at,
       lv.v_score, li.i_score, li.last_activity_at, le.e_score, le.company_name
FROM public.leads l
LEFT JOIN public.lead_verifications lv ON lv.lead_id = l.id
LEFT JOIN public.lead_intents li ON li.lead_id = l.id
LEFT JOIN public.lead_enrichments le ON le.lead_id = l.id
WHERE l.p_score >= 75
  AND (lv.v_score IS NULL OR lv.v_score >= 60);

CREATE UNIQUE INDEX IF NOT EXISTS mv_hot_leads_id ON public.mv_hot_leads (id);
CREATE INDEX IF NOT EXISTS mv_hot_leads_user_score ON public.mv_hot_leads (user_id, p_score DESC);
REVOKE ALL ON public.mv_hot_leads FROM PUBLIC;

CREATE OR REPLACE FUNCTION public.refresh_analytics_mvs() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv_rlhf_sessions_daily;
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv_template_performance;
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv_hot_leads;
END;
$$;

COMMENT ON MATERIALIZED VIEW public.mv_rlhf_sessions_daily IS
  'Daily sessions for the analytics dashboard; refresh every 10 minutes (refresh_analytics_mvs)';

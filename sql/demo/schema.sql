-- SalesFlow demo schema: the tables the optimization plan's hot queries (Q1-Q10) and migrations use,
-- in the state *before* the plan: only primary keys, unique keys and the single-column indexes the
-- plan says already exist. The plan's phase 1-3 objects come from the prepared migrations.
-- The deliberate findings (duplicate, unused index; bloat; a stale view) are in findings.sql.


CREATE TABLE users (
    id          uuid PRIMARY KEY,
    idx         int NOT NULL UNIQUE,          -- dense number, used by the generator and workload
    org_id      uuid NOT NULL,
    email       text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    org_id      uuid NOT NULL,
    name        text NOT NULL,
    email       text,
    phone       text,
    company     text,
    status      text NOT NULL DEFAULT 'active',
    source      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    contact_id      uuid REFERENCES contacts (id),
    name            text NOT NULL,
    email           text,
    phone           text,
    company         text,
    source          text,
    status          text NOT NULL DEFAULT 'new',
    p_score         numeric(5, 2),
    last_scored_at  timestamptz,
    next_follow_up  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE message_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id),
    contact_id        uuid REFERENCES contacts (id),
    lead_id           uuid REFERENCES leads (id),
    channel           text NOT NULL,
    direction         text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    autopilot_status  text NOT NULL DEFAULT 'pending',
    template_version  text,
    persona_variant   text,
    normalized_text   text,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crm_notes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    contact_id  uuid REFERENCES contacts (id),
    lead_id     uuid REFERENCES leads (id),
    note_type   text NOT NULL DEFAULT 'note',
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rlhf_feedback_sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id),
    message_event_id  uuid,
    outcome           text NOT NULL,
    composite_reward  numeric(6, 3),
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dm_conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id),
    lead_id          uuid REFERENCES leads (id),
    contact_id       uuid REFERENCES contacts (id),
    platform         text NOT NULL,
    status           text NOT NULL DEFAULT 'open',
    priority_score   numeric(5, 2) NOT NULL DEFAULT 0,
    unread_count     int NOT NULL DEFAULT 0,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dm_messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id  uuid NOT NULL REFERENCES dm_conversations (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL,
    direction        text NOT NULL,
    content          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lead_verifications (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id       uuid NOT NULL UNIQUE REFERENCES leads (id),
    v_score       numeric(5, 2),
    is_duplicate  boolean NOT NULL DEFAULT false,
    email_valid   boolean,
    verified_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lead_intents (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id           uuid NOT NULL UNIQUE REFERENCES leads (id),
    i_score           numeric(5, 2),
    intent_topic      text,
    last_activity_at  timestamptz
);

CREATE TABLE lead_enrichments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id         uuid NOT NULL UNIQUE REFERENCES leads (id),
    e_score         numeric(5, 2),
    company_name    text,
    industry        text,
    employee_count  int,
    enriched_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deals (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL,
    user_id              uuid NOT NULL REFERENCES users (id),
    contact_id           uuid REFERENCES contacts (id),  -- no index on purpose: Q7 joins on it
    title                text NOT NULL,
    stage                text NOT NULL,
    value                numeric(12, 2) NOT NULL DEFAULT 0,
    expected_close_date  date,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE web_tracking_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id      uuid REFERENCES leads (id),
    event_type   text NOT NULL,
    url          text NOT NULL,
    "timestamp"  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE social_engagement_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id          uuid REFERENCES leads (id),
    platform         text NOT NULL,
    engagement_type  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- The indexes the plan says already exist (section 2.2 and 3.1 "bestehend").
CREATE INDEX idx_message_events_user_id ON message_events (user_id);
CREATE INDEX idx_leads_user_id ON leads (user_id);
CREATE INDEX idx_leads_p_score ON leads (p_score DESC NULLS LAST);
CREATE INDEX idx_crm_notes_user_id ON crm_notes (user_id);
CREATE INDEX idx_crm_notes_contact_id ON crm_notes (contact_id);
CREATE INDEX idx_crm_notes_lead_id ON crm_notes (lead_id);
CREATE INDEX idx_rlhf_sessions_user_id ON rlhf_feedback_sessions (user_id);
CREATE INDEX idx_dm_conversations_user_id ON dm_conversations (user_id);
CREATE INDEX idx_dm_messages_conversation_id ON dm_messages (conversation_id);
CREATE INDEX idx_contacts_user_id ON contacts (user_id);
CREATE INDEX idx_deals_org_id ON deals (org_id);
CREATE INDEX idx_web_tracking_events_lead_id ON web_tracking_events (lead_id);
CREATE INDEX idx_social_engagement_lead_id ON social_engagement_events (lead_id);

-- Records which scale was loaded, so `cli.py demo` loads only once.
CREATE TABLE demo_load_info (
    scale      text NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    seconds    numeric(8, 2)
);

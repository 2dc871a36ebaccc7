-- Deliberate findings for DB Pulse to find in the demo. Run after data.sql.
-- None of them is one of the optimization plan's phase 1-3 objects.

-- step: duplicate indexes
-- An exact duplicate of idx_message_events_user_id, as two migrations that both "made sure" of it leave.
CREATE INDEX idx_message_events_user ON message_events (user_id);
-- A redundant one: its column is the leading prefix of idx_contacts_user_created.
CREATE INDEX idx_contacts_user_created ON contacts (user_id, created_at DESC);

-- step: unused indexes
-- Nothing in the application (or the workload) filters on these.
CREATE INDEX idx_web_tracking_events_url ON web_tracking_events (url);
CREATE INDEX idx_contacts_phone ON contacts (phone);

-- step: bloat churn
-- dm_conversations is updated on every message and pruned; with autovacuum switched off for the
-- table (as a misguided "performance fix" would) the dead rows stay, which is the bloat to find.
ALTER TABLE dm_conversations SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
UPDATE dm_conversations SET unread_count = unread_count + 1, updated_at = now();
UPDATE dm_conversations SET priority_score = round((priority_score * 0.9)::numeric, 2), updated_at = now();
UPDATE dm_conversations SET status = status, updated_at = now() WHERE status IN ('open', 'pending');
UPDATE dm_conversations SET last_message_at = last_message_at + interval '1 minute', updated_at = now();
UPDATE dm_conversations SET unread_count = 0, updated_at = now() WHERE status = 'closed';
DELETE FROM dm_messages WHERE conversation_id IN (
    SELECT id FROM dm_conversations WHERE status = 'archived');
DELETE FROM dm_conversations WHERE status = 'archived';

-- step: stale materialized view
-- A pipeline summary the sales dashboard reads; nothing refreshes it, and the workload keeps adding
-- deals, so it goes stale. It has no unique index, so it cannot be refreshed CONCURRENTLY.
CREATE MATERIALIZED VIEW mv_deal_pipeline AS
SELECT org_id, stage, count(*) AS deal_count, sum(value) AS total_value, max(updated_at) AS last_change
FROM deals
GROUP BY org_id, stage;

-- step: analyze
ANALYZE;

-- The parameters of each audited action (view, versions, pid, confirmation), so a row says
-- exactly what was asked for; and the lookups the Audit log page filters by.
ALTER TABLE dbpulse.audit_log ADD COLUMN IF NOT EXISTS parameters jsonb;
CREATE INDEX IF NOT EXISTS audit_log_actor ON dbpulse.audit_log (actor, started_at DESC);

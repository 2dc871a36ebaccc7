-- Each alert once: the agent's stable alert id (the same for every send of one change), so an
-- agent that restarts between writing a row and noting it does not write a second row.
ALTER TABLE dbpulse.alert_log ADD COLUMN IF NOT EXISTS alert_id text;
CREATE UNIQUE INDEX IF NOT EXISTS alert_log_alert_id ON dbpulse.alert_log (alert_id);

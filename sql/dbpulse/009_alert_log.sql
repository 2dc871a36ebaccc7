-- Alerts the agent raised, one row per change (red, down, recovered), so every dashboard and the
-- weekly review see what fired between two meetings. Written to the history database, like the
-- snapshots: a "down" alert is written once the database is back.
CREATE TABLE IF NOT EXISTS dbpulse.alert_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,          -- the history source (target database)
    target      text NOT NULL,          -- the agent's name for the target
    raised_at   timestamptz NOT NULL,
    check_name  text NOT NULL,
    state       text NOT NULL,          -- red, down or recovered
    title       text NOT NULL,
    summary     text NOT NULL DEFAULT '',
    link        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_log_source_raised_at ON dbpulse.alert_log (source, raised_at);

-- DB Pulse's own schema: applied in file order by operations/dbpulse_schema.py, each file once.
CREATE SCHEMA IF NOT EXISTS dbpulse;

CREATE TABLE IF NOT EXISTS dbpulse.schema_version (
    version     int PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Every DBA action: who, what, on which target and object, when, how long, and how it ended.
CREATE TABLE IF NOT EXISTS dbpulse.audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    actor        text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    object_name  text,
    duration_ms  numeric(12, 1),
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'error', 'refused')),
    detail       text
);
CREATE INDEX IF NOT EXISTS audit_log_started_at ON dbpulse.audit_log (started_at DESC);

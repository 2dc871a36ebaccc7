-- Connection use as the agent sees it every cycle (a snapshot an hour would miss the peaks):
-- client connections in use, DB Pulse's own among them, and the limit they count against.
-- The plan's KPI "connections < 70 % at peak" is the largest share of the application's.
CREATE TABLE IF NOT EXISTS dbpulse.connection_samples (
    source           text NOT NULL,
    taken_at         timestamptz NOT NULL,
    in_use           int NOT NULL,
    own              int NOT NULL,          -- DB Pulse's own connections among them
    max_connections  int NOT NULL,
    reserved         int NOT NULL           -- superuser_reserved (+ reserved) connections
);
CREATE INDEX IF NOT EXISTS connection_samples_source_time
    ON dbpulse.connection_samples (source, taken_at);

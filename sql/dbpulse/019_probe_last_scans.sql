-- When the latency probes last scanned each relation (reads/probes.py): the server's clock
-- once their counts were shared, so no scan of theirs is recorded later. An index's last scan
-- (pg_stat_get_lastscan) at or before it may be the probes' own, and is not shown as the
-- application's. Empty for the rows kept before: not known.
ALTER TABLE dbpulse.probe_reads ADD COLUMN IF NOT EXISTS last_scan_at timestamptz;

-- When the latency probes last scanned each relation (reads/probes.py): the server's clock
-- once their counts were shared, so no scan of theirs is recorded later. An index's last scan
-- (pg_stat_get_lastscan) at or before it may be the probes' own, and is not shown as the
-- application's. The scans recorded before this column all happened before now.
ALTER TABLE dbpulse.probe_reads ADD COLUMN IF NOT EXISTS last_scan_at timestamptz;
UPDATE dbpulse.probe_reads SET last_scan_at = now() WHERE scans > 0 AND last_scan_at IS NULL;

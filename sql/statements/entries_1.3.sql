-- pg_stat_statements 1.3-1.7 (created on PostgreSQL 12 or older and not updated since):
-- one "total_time" for execution, no planning times.
SELECT s.userid, s.dbid, s.queryid, s.query,
       s.calls,
       s.total_time                     AS total_exec_ms,
       s.mean_time                      AS mean_exec_ms,
       s.min_time                       AS min_exec_ms,
       s.max_time                       AS max_exec_ms,
       s.stddev_time                    AS stddev_exec_ms,
       NULL::double precision           AS total_plan_ms,
       s.rows,
       s.shared_blks_hit, s.shared_blks_read,
       s.shared_blks_dirtied, s.shared_blks_written,
       NULL::numeric                    AS wal_bytes,
       NULL::timestamptz                AS stats_since,
       false                            AS minmax_partial,
       NULL::timestamptz                AS minmax_since,
       s.temp_blks_read + s.temp_blks_written AS temp_blks,
       s.temp_blks_written,
       s.blk_read_time + s.blk_write_time     AS io_ms
FROM {pss} s

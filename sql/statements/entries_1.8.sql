-- pg_stat_statements 1.8-1.10 (PostgreSQL 13-16): execution and planning times split.
SELECT s.userid, s.dbid, s.queryid, s.query,
       s.calls,
       s.total_exec_time                AS total_exec_ms,
       s.mean_exec_time                 AS mean_exec_ms,
       s.min_exec_time                  AS min_exec_ms,
       s.max_exec_time                  AS max_exec_ms,
       s.stddev_exec_time               AS stddev_exec_ms,
       s.total_plan_time                AS total_plan_ms,
       s.rows,
       s.shared_blks_hit, s.shared_blks_read,
       s.shared_blks_dirtied, s.shared_blks_written,
       s.wal_bytes,
       NULL::timestamptz                AS stats_since,
       false                            AS minmax_partial,
       NULL::timestamptz                AS minmax_since,
       s.temp_blks_read + s.temp_blks_written AS temp_blks,
       s.blk_read_time + s.blk_write_time     AS io_ms
FROM {pss} s

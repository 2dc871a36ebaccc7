-- pg_stat_statements 1.11+ (PostgreSQL 17+): blk_*_time split into shared, local and temp;
-- stats_since says when this entry started counting (an eviction or reset restarts it);
-- minmax_stats_since when its min and max did.
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
       s.stats_since,
       -- min and max reset on their own (minmax_only): then they miss some of the calls
       s.minmax_stats_since > s.stats_since AS minmax_partial,
       s.minmax_stats_since             AS minmax_since,
       s.temp_blks_read + s.temp_blks_written AS temp_blks,
       s.temp_blks_written,
       s.shared_blk_read_time + s.shared_blk_write_time
         + s.local_blk_read_time + s.local_blk_write_time
         + s.temp_blk_read_time + s.temp_blk_write_time AS io_ms
FROM {pss} s

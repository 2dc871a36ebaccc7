"""The health checks behind the Overview banners and `cli.py check`: each returns a Finding
with a severity against the configured thresholds, the objects involved (schema-qualified),
why it matters, and the SQL that fixes it."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import pandas as pd
import psycopg

from foundation import migration_files
from foundation.capabilities import Capabilities
from foundation.config import Settings
from foundation.connections import describe_error
from foundation.format import human_bytes, state_for_ratio
from foundation.frames import rows
from foundation.identifiers import qualified, quote_ident
from foundation.looks import one_look
from foundation.threads import work_beside
from reads import activity, bloat, cache, indexes, matviews, replication, statements, vacuum

OWN_SCHEMA = indexes.OWN_SCHEMA  # DB Pulse's own tables are not the application's problem
SEVERITY_ORDER = {"red": 0, "amber": 1, "grey": 2, "green": 3}
VACUUM_MIN_DEAD_ROWS = 1000  # fewer dead rows than this are not worth a finding


def counted(n: int, word: str, plural: str | None = None) -> str:
    """
    >>> counted(1, "table"), counted(3, "index", "indexes"), counted(0, "sequence")
    ('1 table', '3 indexes', '0 sequences')
    """
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def are(n: int) -> str:
    return "is" if n == 1 else "are"


def was(n: int) -> str:
    return "was" if n == 1 else "were"


@dataclass
class Finding:
    check: str          # stable id: slow_queries, unused_indexes, ...
    title: str
    severity: str       # green | amber | red | grey (could not be checked)
    count: int
    summary: str        # what was found and why it matters
    page: str           # the dashboard page that shows the details
    objects: list[str] = field(default_factory=list)
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def slow_query_kpi(conn, caps: Capabilities,
                   settings: Settings) -> statements.SlowQueryKpi | None:
    """The KPI as the slow-query check reads it, for a caller that wants its figures too (one
    read of pg_stat_statements instead of two); None where it cannot be read (the check then
    says why)."""
    if not caps.has_pg_stat_statements:
        return None
    try:
        return _read_kpi(conn, caps, settings)
    except psycopg.Error:
        return None


def _read_kpi(conn, caps: Capabilities, settings: Settings) -> statements.SlowQueryKpi:
    return statements.slow_query_kpi(conn, caps.extension("pg_stat_statements"),
                                     settings.kpi_slow_ms, settings.slow_query_mean_ms,
                                     settings.slow_query_min_calls)


def check_slow_queries(conn, caps: Capabilities, settings: Settings,
                       kpi: statements.SlowQueryKpi | None = None) -> Finding:
    """kpi: slow_query_kpi's, when the caller has read it already."""
    page = "slow_queries"
    if not caps.has_pg_stat_statements:
        # the capability that is missing says why, with its fix (an install, the preload, or
        # USAGE on the schema it lives in)
        issue = next((i for i in caps.issues if i.name == "pg_stat_statements"), None)
        return Finding("slow_queries", "Slow queries", "grey", 0,
                       (issue.message if issue else "pg_stat_statements is not available "
                        "here") + " Statements cannot be judged.", page,
                       fix=issue.fix if issue else
                       "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
    if kpi is None:
        kpi = _read_kpi(conn, caps, settings)
    slow = kpi.slow_statements
    # red only when even the lower bound of the slow-call share misses the plan's target
    kpi_state = kpi.state(settings.kpi_slow_share_target)
    severity = ("red" if kpi_state == "red"
                else "amber" if slow or kpi_state == "amber" else "green")
    return Finding(
        "slow_queries", "Slow queries", severity, slow,
        f"{counted(slow, 'statement')} average{'s' if slow == 1 else ''} ≥ {settings.slow_query_mean_ms:g} ms over ≥ "
        f"{settings.slow_query_min_calls} calls. Calls slower than "
        f"{settings.kpi_slow_ms / 1000:g} s: {kpi.text()} (target < "
        f"{100 * settings.kpi_slow_share_target:g} %). Slow statements hold connections and "
        "make pages wait.", page,
        # another role's statement has no queryid without pg_read_all_stats
        objects=[f"queryid {int(q)}" if q is not None else "a statement of another role (its id "
                 "and text need pg_read_all_stats)" for q in kpi.slowest_queryids],
        fix="-- look at the plan of each on the Slow queries page; the Indexes page lists "
            "missing-index hints")


@dataclass(frozen=True)
class IndexReads:
    """What the index findings are judged from: the evidence of the indexes' ages and usage,
    and the catalogue (indexes.review_reads)."""
    evidence: indexes.UsageEvidence
    catalogue: indexes.ReviewReads


def index_reads(conn, settings: Settings, replica_urls: tuple[str, ...] = ()) -> IndexReads:
    """replica_urls: the target's declared read replicas, whose index scans count too."""
    evidence = indexes.usage_evidence(conn, migration_files.migrations_dir(settings),
                                      timedelta(days=settings.unused_index_min_age_days),
                                      replica_urls, settings)
    return IndexReads(evidence, indexes.review_reads(conn, settings.unused_index_min_bytes))


def judged_indexes(reads: IndexReads, settings: Settings,
                   include_own: bool = False) -> indexes.IndexReview:
    found = indexes.judge_review(reads.catalogue, settings.unused_index_min_bytes,
                                 reads.evidence)
    return found if include_own else found.without_own()


def index_review(conn, settings: Settings, include_own: bool = False,
                 replica_urls: tuple[str, ...] = ()) -> indexes.IndexReview:
    return judged_indexes(index_reads(conn, settings, replica_urls), settings, include_own)


def check_indexes(conn, settings: Settings, replica_urls: tuple[str, ...] = ()) -> list[Finding]:
    return index_check_findings(index_reads(conn, settings, replica_urls), settings)


def index_check_findings(reads: IndexReads, settings: Settings) -> list[Finding]:
    """check_indexes' findings from its reads, without reading anything more."""
    found = judged_indexes(reads, settings)
    page = "indexes"
    unused, duplicates, invalid, fk = (found.unused, found.duplicates, found.invalid,
                                       found.foreign_keys)
    waiting = found.not_judged
    not_judged = (f" {len(waiting)} more without scans are kept, too new or of unknown age "
                  "(the Indexes page says why)." if waiting else "")
    return [
        Finding("unused_indexes", "Unused indexes", "amber" if unused else "green", len(unused),
                f"{counted(len(unused), 'index', 'indexes')} {was(len(unused))} never scanned since "
                "the statistics reset" + (f": each slows every write; together they take "
                                          f"{_size(unused)}." if unused else ".")
                + not_judged,
                page, [f.qualified_name for f in unused], "\n".join(f.fix for f in unused)),
        Finding("duplicate_indexes", "Duplicate and redundant indexes",
                "amber" if duplicates else "green", len(duplicates),
                f"{counted(len(duplicates), 'index', 'indexes')} {are(len(duplicates))} covered by "
                "another index on the same table: "
                "writes maintain both, reads need one"
                + (f"; together they take {_size(duplicates)}." if duplicates else "."), page,
                [f.qualified_name for f in duplicates], "\n".join(f.fix for f in duplicates)),
        Finding("invalid_indexes", "Invalid indexes", "red" if invalid else "green", len(invalid),
                f"{counted(len(invalid), 'index', 'indexes')} {are(len(invalid))} INVALID (a concurrent "
                "build failed): they are "
                "maintained on every write and never used.", page,
                [f.qualified_name for f in invalid], "\n".join(f.fix for f in invalid)),
        Finding("unindexed_foreign_keys", "Foreign keys without an index",
                "amber" if fk else "green", len(fk),
                f"{counted(len(fk), 'foreign key')} {'has' if len(fk) == 1 else 'have'} no index "
                "leading with their columns: deleting or "
                "updating a referenced row scans the whole referencing table.", page,
                [f"{qualified(h.schema_name, h.table_name)} ({h.columns})" for h in fk],
                "\n".join(h.fix for h in fk if h.fix)),
    ]


def _size(found: list[indexes.IndexFinding]) -> str:
    """The indexes' pages together, as list_indexes sizes them (as of the last VACUUM, ANALYZE
    or build)."""
    return human_bytes(sum(f.size_bytes for f in found))


def check_bloat(conn, settings: Settings) -> Finding:
    # a relation smaller than the minimum cannot be a finding: only bigger ones are estimated
    tables, idx = bloat.table_and_index_bloat(conn, settings.bloat_min_bytes)

    def bloated(frame):
        if frame.empty:
            return frame
        return frame[(frame["bloat_ratio"] >= settings.bloat_min_ratio)
                     & (frame["bloat_bytes"] >= settings.bloat_min_bytes)
                     & (frame["schema_name"] != OWN_SCHEMA)]

    bad_tables, bad_indexes = bloated(tables), bloated(idx)
    count = len(bad_tables) + len(bad_indexes)
    # an empty estimate has no columns (nothing was big enough to estimate)
    total = int(sum(f["bloat_bytes"].sum() for f in (bad_tables, bad_indexes) if len(f)))
    fixes = [bloat.table_fix_sql(r.schema_name, r.table_name) for r in rows(bad_tables)]
    fixes += [bloat.index_fix_sql(r.schema_name, r.index_name) for r in rows(bad_indexes)]
    relations = [f[(f["schema_name"] != OWN_SCHEMA) & (f["pages"] > 0)] for f in (tables, idx)
                 if not f.empty]
    unknown = sum(int(f["bloat_ratio"].isna().sum()) for f in relations)
    known = sum(len(f) for f in relations) - unknown
    unknown_text = (f" Bloat is unknown for {counted(unknown, 'relation')} of at least "
                    f"{settings.bloat_min_bytes / 1048576:g} MB (the Bloat page says why: "
                    "missing or unreadable statistics, deduplicated B-tree indexes)."
                    if unknown else "")
    severity = "amber" if count else "grey" if unknown and not known else "green"
    return Finding(
        "bloat", "Table and index bloat (estimate)", severity, count,
        f"{_relations(len(bad_tables), len(bad_indexes))} {are(count)} at least "
        f"{100 * settings.bloat_min_ratio:g} % bloated (about {total / 1048576:.1f} MB, "
        "estimated): scans read the empty space too." + unknown_text, "bloat",
        [qualified(r.schema_name, r.table_name) for r in rows(bad_tables)]
        + [qualified(r.schema_name, r.index_name) for r in rows(bad_indexes)],
        "\n".join(fixes))


def _relations(tables: int, indexes: int) -> str:
    """
    >>> _relations(1, 0), _relations(2, 1), _relations(0, 0)
    ('1 table', '2 tables and 1 index', 'No table or index')
    """
    parts = [counted(n, word, plural) for n, word, plural in
             ((tables, "table", None), (indexes, "index", "indexes")) if n]
    return " and ".join(parts) or "No table or index"


def check_vacuum(conn, settings: Settings) -> list[Finding]:
    status = vacuum.vacuum_status(conn, VACUUM_MIN_DEAD_ROWS)
    behind = status[(status["trigger_progress"] >= 2)
                    & (status["schema_name"] != OWN_SCHEMA)]
    disabled = behind[~behind["autovacuum_enabled"]]
    fixes = []
    for r in rows(behind):
        name = qualified(r.schema_name, r.table_name)
        if not r.autovacuum_enabled:
            fixes.append(f"ALTER TABLE {name} RESET (autovacuum_enabled);")
        fixes.append(f"VACUUM (ANALYZE) {name};")
    wrap = vacuum.wraparound(conn)
    worst = float(wrap["share_of_limit"].max()) if len(wrap) else 0.0
    wrap_severity = "red" if worst >= 0.75 else "amber" if worst >= 0.5 else "green"
    sequences = vacuum.sequences_near_max(conn, 0.75)
    sequences = sequences[sequences["schema_name"] != OWN_SCHEMA]
    unreadable = sequences[~sequences["readable"].astype(bool)]
    sequences = sequences[sequences["readable"].astype(bool)]
    seq_severity = ("red" if (sequences["used_share"] >= 0.9).any()
                    else "amber" if len(sequences) else "grey" if len(unreadable) else "green")
    cannot_read = (f" {counted(len(unreadable), 'sequence')} cannot be read by the monitoring role, so "
                   "their use is unknown: grant it SELECT on them (or pg_read_all_data)."
                   if len(unreadable) else "")
    return [
        Finding("vacuum", "Vacuum falling behind", "amber" if len(behind) else "green",
                len(behind),
                f"{counted(len(behind), 'table')} hold{'s' if len(behind) == 1 else ''} at least twice the dead rows that should have "
                f"triggered autovacuum ({len(disabled)} with autovacuum switched off): dead rows "
                "bloat the table and slow scans.", "bloat",
                [qualified(r.schema_name, r.table_name) for r in rows(behind)],
                "\n".join(fixes)),
        Finding("wraparound", "Transaction ID wraparound", wrap_severity,
                int((wrap["share_of_limit"] >= 0.5).sum()),
                f"The oldest database is {100 * worst:.2f} % of the way to the 2^31 transaction "
                "limit; at the limit PostgreSQL stops accepting writes.", "bloat",
                list(wrap[wrap["share_of_limit"] >= 0.5]["database_name"]),
                "VACUUM (FREEZE, VERBOSE);  -- in the oldest database; find blockers first: "
                "long transactions, prepared transactions, stale replication slots"),
        Finding("sequences", "Sequences near their maximum", seq_severity, len(sequences),
                f"{counted(len(sequences), 'sequence')} {'has' if len(sequences) == 1 else 'have'} used 75 % or more of their range (or of the "
                "integer column they feed): inserts fail when they run out." + _cycling(sequences)
                + cannot_read,
                "bloat",
                [qualified(r.schema_name, r.sequence_name) for r in rows(sequences)],
                "\n".join(filter(None, (vacuum.widen_sql(r) for r in rows(sequences))))),
    ]


def _cycling(sequences) -> str:
    """What a CYCLE sequence does at the end instead of failing."""
    cycling = [qualified(r.schema_name, r.sequence_name) for r in rows(sequences)
               if r.cycles]
    if not cycling:
        return ""
    return (f" {', '.join(cycling)} {'is' if len(cycling) == 1 else 'are'} CYCLE: at the end "
            "they start again and hand out values already used, so inserts collide with "
            "existing keys (or repeat ids where nothing is unique).")


def matview_list(conn, settings: Settings) -> pd.DataFrame | None:
    """The materialized views as the matview check reads them, for a caller that wants them
    too; None where they cannot be read (the check then says why)."""
    try:
        return matviews.list_matviews(conn, settings.matview_max_age_minutes)
    except psycopg.Error:
        return None


def check_matviews(conn, settings: Settings, views: pd.DataFrame | None = None) -> Finding:
    """views: matview_list's, when the caller has read them already."""
    if views is None:
        views = matviews.list_matviews(conn, settings.matview_max_age_minutes)
    stale = views[views["stale"]] if not views.empty else views
    names = [qualified(r.schema_name, r.view_name) for r in rows(stale)]
    # escalation: refreshes that keep failing (whoever runs them), or twice the maximum age
    red: dict[str, str] = {}
    for r in rows(stale):
        name = qualified(r.schema_name, r.view_name)
        if r.failures_in_a_row >= settings.matview_failures_red:
            red[name] = f"{r.failures_in_a_row} refreshes in a row failed"
        elif pd.notna(r.age_minutes) and r.age_minutes > 2 * settings.matview_max_age_minutes:
            red[name] = f"{r.age_minutes:,.0f} min old"
    return Finding(
        "matviews", "Stale materialized views", "red" if red else "amber" if len(stale)
        else "green", len(stale),
        ("Red: " + "; ".join(f"{name} ({why})" for name, why in red.items()) + ". "
         if red else "")
        + f"{len(stale)} of {len(views)} materialized views are older than "
        f"{settings.matview_max_age_minutes:g} min with writes to their sources since, never "
        "populated, or have no recorded refresh: readers see old data.", "matviews", names,
        "\n".join(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY ' if r.concurrent_refresh else ''}"
                  f"{qualified(r.schema_name, r.view_name)};" for r in rows(stale)))


def check_cache(conn, settings: Settings, rates: cache.CacheHitRates | None = None) -> Finding:
    rates = rates or cache.cache_hit_rates(conn, per_kind=False)  # the verdict is the database's
    severity = state_for_ratio(rates.database, settings.buffer_cache_hit_threshold)
    found = ("Unknown: no block of the database's tables and indexes was read since the "
             "statistics reset" if rates.database is None
             else f"{100 * rates.database:.2f} % of the block reads of the database's tables and "
                  "indexes came from shared buffers since the statistics reset")
    return Finding("cache_hit", "Buffer cache hit rate", severity,
                   0 if severity in ("green", "grey") else 1,
                   f"{found} (target ≥ {100 * settings.buffer_cache_hit_threshold:g} %). Misses "
                   "read from disk or the OS cache.", "buffer_cache",
                   fix="-- raise shared_buffers (about 25 % of RAM), or index the tables with "
                       "most disk reads (Buffer cache page)")


def _limits_finding(limits, settings: Settings) -> Finding:
    """Roles and databases near the connection limit of their own."""
    share = limits["connections"] / limits["connection_limit"].clip(lower=1)
    near = limits[share >= settings.connections_amber_share]
    full = near[near["connections"] >= near["connection_limit"]]
    return Finding(
        "connection_limits", "Role and database connection limits",
        "red" if len(full) else "amber" if len(near) else "green", len(near),
        (f"{counted(len(near), 'role or database', 'roles or databases')} at "
         f"{100 * settings.connections_amber_share:.0f} % or more of the connection limit of "
         "its own; at the limit the next connection is refused: "
         + ", ".join(f"{r.kind} {r.name} {r.connections} of {r.connection_limit}"
                     for r in rows(near))) if len(near) else
        "No role or database is near a connection limit of its own.",
        "activity", [f"{r.kind} {r.name}" for r in rows(near)],
        "\n".join(activity.raise_limit_sql(r.kind, r.name, int(r.connection_limit))
                  for r in rows(near)))


def check_activity(conn, settings: Settings, caps: Capabilities | None = None) -> list[Finding]:
    frame = activity.sessions(conn)
    slow = activity.long_running(frame, settings.long_query_s)
    idle = activity.idle_in_transaction(frame, settings.idle_in_transaction_s)
    blocked = activity.blocked(frame)
    tree = activity.blocking_tree(frame)
    use = activity.connection_use(conn)
    conn_severity = ("red" if use.share >= settings.connections_red_share else
                     "amber" if use.share >= settings.connections_amber_share else "green")
    long_count = len(slow) + len(idle)
    findings = [
        Finding("long_running", "Long-running queries and idle transactions",
                "amber" if long_count else "green", long_count,
                f"{counted(len(slow), 'statement')} {'has' if len(slow) == 1 else 'have'} run over {settings.long_query_s:g} s and "
                f"{counted(len(idle), 'session')} sit{'s' if len(idle) == 1 else ''} idle in a "
                f"transaction over "
                f"{settings.idle_in_transaction_s:g} s: they hold locks and stop vacuum.",
                "activity", [f"pid {p}" for p in list(slow["pid"]) + list(idle["pid"])],
                "\n".join(activity.end_session_sql(p, s) for p, s in
                          zip(list(slow["pid"]) + list(idle["pid"]),
                              list(slow["state"]) + list(idle["state"])))),
        Finding("blocked_sessions", "Blocked sessions", "red" if len(blocked) else "green",
                len(blocked),
                f"{counted(len(blocked), 'session')} wait{'s' if len(blocked) == 1 else ''} for a lock another session holds"
                + (f"; the root blockers: pids {', '.join(map(str, tree[tree['depth'] == 0]['pid']))}"
                   if len(tree) else "") + ".", "activity",
                [f"pid {p} blocked by {list(b)}" for p, b in zip(blocked["pid"],
                                                                 blocked["blocked_by"])],
                # ending the root blockers ends the whole tree
                "\n".join(tree[tree["depth"] == 0]["end_sql"])),
        _limits_finding(activity.connection_limits(conn), settings),
        Finding("connections", "Connections", conn_severity, use.used,
                f"{use.used} of {use.available} connections in use "
                f"({100 * use.share:.0f} %; max_connections {use.max_connections}, "
                f"{use.reserved} reserved). At the limit new connections are refused.",
                "activity", fix="-- use a connection pooler (Supabase: Supavisor) or raise "
                                "max_connections"),
    ]
    if caps is not None and not caps.can_read_all_stats:
        # other roles' sessions show without state, query or type: what is not seen is unknown
        blind = ("Unknown: the monitoring role cannot see other roles' sessions (their state, "
                 "statement and locks). Grant it pg_read_all_stats (part of pg_monitor).")
        grant = f"GRANT pg_monitor TO {quote_ident(caps.current_user)};"
        findings = [Finding(f.check, f.title, "grey", 0, blind, f.page, [], grant)
                    for f in findings]
    return findings


def check_replication(conn, settings: Settings) -> list[Finding]:
    """Standbys behind (on a primary), this standby's own replay (on a standby), and slots that
    hold WAL back for a consumer that is not there (the classic full disk) or lost it."""
    page = "replication"
    max_s, max_bytes = settings.replication_lag_max_s, settings.replication_lag_max_bytes
    behind, fix = [], ""
    on_standby = replication.recovery(conn)
    if on_standby is not None:
        waiting = (on_standby.receive_behind_bytes or 0) > 0
        if on_standby.paused:
            behind.append("replay is paused")
            fix = "SELECT pg_wal_replay_resume();  -- on this standby"
        elif waiting and (on_standby.replay_delay_s or 0) > max_s:
            behind.append(f"replay {on_standby.replay_delay_s:,.0f} s behind")
        if on_standby.receiver_status not in ("streaming", None):
            behind.append(f"WAL receiver {on_standby.receiver_status}")
        what = "This standby"
    else:
        frame = replication.standbys(conn)
        late = frame[(frame["replay_lag_bytes"].fillna(0) > max_bytes)
                     | (frame["replay_lag_s"].fillna(0) > max_s) | (frame["state"] != "streaming")]
        behind = replication.standby_names(late)
        what = f"{counted(len(frame), 'standby', 'standbys')} streaming;"
        if behind:
            fix = ("-- on each standby behind: SELECT pg_is_wal_replay_paused(); and "
                   "pg_wal_replay_resume() if it is; otherwise look at its disk, network and "
                   "long queries (hot_standby_feedback holds back vacuum here)")
    lag = Finding("replication_lag", "Replication lag", "amber" if behind else "green",
                  len(behind),
                  f"{what} " + (f"behind more than {max_s:g} s or "
                                f"{max_bytes // 1048576:,} MB: {', '.join(behind)}. Reads there "
                                "are that old." if behind else "none behind."),
                  page, behind, fix)
    lost, idle = replication.slot_check_rows(replication.slots(conn),
                                             settings.slot_retained_max_bytes)
    slot_fix = "\n".join(replication.drop_slot_sql(name) for name in lost + idle)
    slots = Finding("replication_slots", "Replication slots", "red" if lost or idle else "green",
                    len(lost) + len(idle),
                    (f"{counted(len(idle), 'inactive slot')} hold{'s' if len(idle) == 1 else ''} "
                     f"back more than {settings.slot_retained_max_bytes // 1048576:,} MB of WAL "
                     "each: the server keeps it until the consumer returns, and the disk fills. "
                     if idle else "")
                    + (f"{counted(len(lost), 'slot')} lost its WAL: its consumer cannot "
                       "resume and must be rebuilt. " if lost else "")
                    or "No slot holds WAL back beyond the limit.",
                    page, lost + idle, slot_fix)
    return [lag, slots, _subscriptions_finding(replication.subscriptions(conn), page)]


def _subscriptions_finding(subs, page: str) -> Finding:
    """Enabled subscriptions whose apply worker is not running: the publisher's slot keeps
    WAL for them, and this database falls behind."""
    stopped = subs[subs["enabled"].astype(bool) & ~subs["receiving"].astype(bool)]
    names = list(stopped["subscription"])
    return Finding(
        "subscriptions", "Logical subscriptions", "amber" if names else "green", len(names),
        (f"{counted(len(names), 'enabled subscription')} receive{'s' if len(names) == 1 else ''}"
         f" nothing (no apply worker): {', '.join(names)}. The publisher keeps WAL for "
         "them and this database falls behind; the server log says why (often a conflict, "
         "a missing slot or a connection error); after fixing it, ALTER SUBSCRIPTION … "
         "DISABLE and ENABLE restart its worker.") if names else
        f"{counted(len(subs), 'subscription')}, none stopped.",
        page, names)  # no fix to run: the cause is in the server log


# run_all's findings in this order within each severity
CHECK_ORDER = ("slow_queries", "indexes", "bloat", "vacuum", "cache_hit", "matviews",
               "activity", "replication")


def run_all(conn: psycopg.Connection, caps: Capabilities, settings: Settings,
            spare_conn: psycopg.Connection | None = None,
            rates: cache.CacheHitRates | None = None,
            index_findings: Future | None = None,
            replica_urls: tuple[str, ...] = (),
            kpi: statements.SlowQueryKpi | None = None,
            views: pd.DataFrame | None = None) -> list[Finding]:
    """Every check; one that fails (a timeout, a missing privilege) becomes a grey finding
    with its reason instead of stopping the others. spare_conn: a second connection to the same
    database, on which the index checks (most of the time on a big catalogue) run meanwhile;
    or index_findings: those checks already started by the caller (index_checks_aside), which
    can then read more on this connection while they run; rates, kpi and views: the buffer
    cache figures, slow_query_kpi's and matview_list's, when the caller has read them already;
    replica_urls: the target's declared read replicas. With neither, the index checks read on
    conn first and are judged meanwhile (_index_checks_judged_aside). One look (one_look): the
    reads several checks make (the standbys, the probes' ledger) are made once on conn."""
    runs = {"slow_queries": lambda c: [check_slow_queries(c, caps, settings, kpi)],
            "bloat": lambda c: [check_bloat(c, settings)],
            "vacuum": lambda c: check_vacuum(c, settings),
            "cache_hit": lambda c: [check_cache(c, settings, rates)],
            "matviews": lambda c: [check_matviews(c, settings, views)],
            "activity": lambda c: check_activity(c, settings, caps),
            "replication": lambda c: check_replication(c, settings)}
    with one_look(conn), work_beside() as pool:
        if index_findings is None:
            index_findings = (index_checks_aside(pool, spare_conn, settings, replica_urls)
                              if spare_conn is not None
                              else _index_checks_judged_aside(pool, conn, settings, replica_urls))
        found = {name: _guarded(name, run, conn) for name, run in runs.items()}
        found["indexes"] = index_findings.result()
    findings = [f for name in CHECK_ORDER for f in found[name]]
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])


def index_checks_aside(pool: ThreadPoolExecutor, spare_conn: psycopg.Connection,
                       settings: Settings, replica_urls: tuple[str, ...] = ()) -> Future:
    """The index checks started on spare_conn in pool's thread, for run_all(index_findings=)."""
    return pool.submit(_guarded, "indexes", lambda c: check_indexes(c, settings, replica_urls),
                       spare_conn)


def _index_checks_judged_aside(pool: ThreadPoolExecutor, conn: psycopg.Connection,
                               settings: Settings, replica_urls: tuple[str, ...]) -> Future:
    """The index checks' reads on conn now, their judging in pool's thread: pure Python (a
    fifth of run_all's time at 25,000 indexes), it runs while conn serves the other checks.
    (The connection itself is never shared between threads: a transaction one of them opened
    would take in the other's statements.)"""
    try:
        reads = index_reads(conn, settings, replica_urls)
    except psycopg.Error as exc:
        done: Future = Future()
        done.set_result(could_not_check("indexes", exc))
        return done
    return pool.submit(index_check_findings, reads, settings)


def _guarded(name: str, run, conn: psycopg.Connection) -> list[Finding]:
    try:
        return run(conn)
    except psycopg.Error as exc:
        return could_not_check(name, exc)


def could_not_check(name: str, exc: Exception) -> list[Finding]:
    """A grey finding: the check `name` could not run (a psycopg error, or the DatabaseProblem
    a loader reports)."""
    problem = describe_error(exc)
    return [Finding(name, name.replace("_", " ").capitalize(), "grey", 0,
                    f"Could not check: {problem.message}", name, fix=problem.hint)]


def worst_severity(findings: list[Finding]) -> str:
    return min((f.severity for f in findings), key=lambda s: SEVERITY_ORDER[s], default="green")

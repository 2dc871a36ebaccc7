"""The index findings a careful DBA checked by hand, one crafted catalogue per case: sort order,
NULLS NOT DISTINCT, the only index of a foreign key, indexes too new to judge, partitioned
tables, names that need quoting, DB Pulse's own objects. Every fix SQL a finding carries is run
as shown: it succeeds, the finding goes, and the foreign-key check is no worse."""

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from demo import loader
from foundation import migration_files
from foundation.connections import admin_connection, monitoring_connection
from operations import checks, dbpulse_schema, migrations
from reads import indexes
from tests.conftest import as_actor, index_findings


def _run(url, sql_text):
    """Run fix SQL exactly as a DBA pastes it: statement by statement, comments and all."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _statements(sql_text):
            conn.execute(statement)


def _statements(sql_text):
    from pglast import split
    return [s for s in split(sql_text)]


def _run_all_fixes(url, settings, found, kinds=("duplicates", "unused")):
    before_fk = {h.fix for h in found.foreign_keys}
    for finding in [f for kind in kinds for f in getattr(found, kind)]:
        _run(url, finding.fix)
    after = index_findings(url, settings)
    assert {h.fix for h in after.foreign_keys} <= before_fk, "a fix left a foreign key bare"
    return after


@pytest.fixture
def ordered(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE t (id int PRIMARY KEY, a int, b int, e int, f int, g int);
            INSERT INTO t SELECT i, i % 50, i % 7, i % 11, i % 13, i FROM generate_series(1, 3000) i;
            CREATE INDEX t_ab_1 ON t (a, b);
            CREATE INDEX t_ab_2 ON t (a, b);
            CREATE INDEX t_ab_desc ON t (a, b DESC);
            CREATE INDEX t_ef ON t (e, f);
            CREATE INDEX t_ef_nulls_first ON t (e, f NULLS FIRST);
            CREATE INDEX t_e_f_backwards ON t (e DESC, f DESC);
            CREATE UNIQUE INDEX t_g_plain ON t (g);
            CREATE UNIQUE INDEX t_g_nnd ON t (g) NULLS NOT DISTINCT;
            ANALYZE t;
        """)
    return scratch_database


def test_duplicates_respect_order_nulls_order_and_nulls_not_distinct(ordered, settings):
    found = {f.index_name: f for f in index_findings(ordered, settings).duplicates}
    # one (a, b) goes, the other stays; (a, b DESC) serves another order and stays
    assert {"t_ab_1", "t_ab_2"} & set(found) and not {"t_ab_1", "t_ab_2"} <= set(found)
    twin = next(n for n in ("t_ab_1", "t_ab_2") if n in found)
    assert found[twin].covered_by in {"t_ab_1", "t_ab_2"} - {twin}
    assert "which stays" in found[twin].reason
    assert "t_ab_desc" not in found and "t_ef_nulls_first" not in found
    # (e DESC, f DESC) is (e, f) read backwards: one of the two is a true duplicate
    assert ("t_ef" in found) != ("t_e_f_backwards" in found)
    # the plain unique index goes; the NULLS NOT DISTINCT one enforces more and stays
    assert "t_g_nnd" not in found
    assert found["t_g_plain"].covered_by == "t_g_nnd"
    after = _run_all_fixes(ordered, settings, index_findings(ordered, settings), ["duplicates"])
    assert after.duplicates == []
    with psycopg.connect(ordered) as conn:
        left = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 't'")}
        assert {"t_ab_desc", "t_ef_nulls_first", "t_g_nnd"} <= left
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_sort = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT a, b FROM t ORDER BY a, b DESC LIMIT 5"))
        assert "Sort" not in plan  # the query that needed (a, b DESC) still reads it in order
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO t (id, g) VALUES (90001, NULL), (90002, NULL)")


@pytest.fixture
def foreign_keyed(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE account (id int PRIMARY KEY, code int UNIQUE);
            CREATE TABLE region (code int);
            CREATE UNIQUE INDEX region_code ON region (code);
            CREATE UNIQUE INDEX region_code_nnd ON region (code) NULLS NOT DISTINCT;
            CREATE TABLE invoice (id int PRIMARY KEY, account_id int REFERENCES account (id),
                                  account_code int, note text,
                                  region_code int REFERENCES region (code));
            CREATE INDEX invoice_region ON invoice (region_code);
            CREATE TABLE payment (id int PRIMARY KEY, invoice_id int REFERENCES invoice (id),
                                  paid int);
            CREATE UNIQUE INDEX account_code_again ON account (code, id);
            INSERT INTO account SELECT i, i FROM generate_series(1, 100) i;
            INSERT INTO invoice SELECT i, 1 + i % 100, 1 + i % 100, 'n' FROM generate_series(1, 2000) i;
            INSERT INTO payment SELECT i, 1 + i % 2000, i FROM generate_series(1, 2000) i;
            CREATE INDEX invoice_account ON invoice (account_id);
            CREATE INDEX payment_invoice ON payment (invoice_id);
            CREATE INDEX payment_invoice_paid ON payment (invoice_id, paid);
            CREATE INDEX invoice_note ON invoice (note);
            ANALYZE;
        """)
    return scratch_database


def test_the_only_index_of_a_foreign_key_is_kept_and_dropping_the_rest_keeps_fks_covered(
        foreign_keyed, settings):
    found = index_findings(foreign_keyed, settings)
    judged = {f.index_name: f for f in found.judged}
    assert judged["invoice_account"].verdict == "kept"
    assert "supports foreign key invoice_account_id_fkey" in judged["invoice_account"].reason
    assert judged["invoice_account"].fix == ""
    assert judged["invoice_note"].verdict == "drop"
    # payment_invoice is a redundant prefix of payment_invoice_paid: one of the two may go
    assert [f.index_name for f in found.duplicates] == ["payment_invoice"]
    assert "payment_invoice_paid" not in {f.index_name for f in found.unused}
    assert found.foreign_keys == []
    # region_code is covered by the stricter region_code_nnd, but a foreign key points at it:
    # its DROP would fail, so it is not proposed
    assert "region_code" not in {f.index_name for f in found.duplicates}
    after = _run_all_fixes(foreign_keyed, settings, found)
    assert after.foreign_keys == [] and after.unused == [] and after.duplicates == []


def test_indexes_built_by_a_recent_migration_are_too_new_to_judge(scratch_database,
                                                                   dba_settings):
    loader.load(scratch_database, "small")
    found = migration_files.discover()
    with admin_connection(scratch_database, dba_settings) as conn:
        migrations.apply(conn, as_actor(dba_settings, scratch_database), found[:1])
    built = {s.index_name.split(".")[-1] for s in found[0].statements if s.index_name}
    assert built
    with monitoring_connection(scratch_database, dba_settings) as conn:
        review = checks.index_review(conn, dba_settings)
        check = {f.check: f for f in checks.check_indexes(conn, dba_settings)}
    judged = {f.index_name: f for f in review.judged}
    young = {n for n in built if n in judged}
    assert young, "the migration's indexes have no scans yet"
    for name in young:
        assert judged[name].verdict == "too new"
        assert "built by migration 0001" in judged[name].reason and judged[name].fix == ""
    assert not young & {f.index_name for f in review.unused}
    assert not {f"public.{n}" for n in young} & set(check["unused_indexes"].objects)
    # an old index without scans is still judged: evidence is per index, not per database
    with monitoring_connection(scratch_database, dba_settings) as conn:
        late = indexes.usage_evidence(conn, migration_files.migrations_dir(dba_settings),
                                      timedelta(seconds=0))
        assert all(late.too_new(f"public.{n}") is None for n in young)


def test_an_index_known_to_be_new_is_too_new_even_beside_a_standby():
    """A plan's index built a minute ago on a server that streams to a standby: minutes of
    zero scans prove nothing wherever the reads go, so it waits as too new (it read "used on a
    standby?" in the demo); an index of unknown age there may be used on the standby."""
    now = datetime.now(timezone.utc)
    evidence = indexes.UsageEvidence(
        now, standbys=("demo_standby (127.0.0.1)",),
        created_after={"public.fresh": (now - timedelta(minutes=1), "built by migration 0001")})
    verdict, why = evidence.waiting("public.fresh")
    assert verdict == "too new" and "built by migration 0001" in why
    assert evidence.waiting("public.older")[0] == "used on a standby?"


def test_a_reset_younger_than_the_minimum_age_proves_nothing(foreign_keyed, settings):
    with psycopg.connect(foreign_keyed, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
    with monitoring_connection(foreign_keyed, settings) as conn:
        evidence = indexes.usage_evidence(conn, None, timedelta(days=7))
    judged = {f.index_name: f for f in index_findings(foreign_keyed, settings, evidence).judged}
    assert judged["invoice_note"].verdict == "too new"
    assert "statistics were reset only" in judged["invoice_note"].reason


def test_zero_scans_of_an_index_of_unknown_age_are_no_reason_to_drop(foreign_keyed, settings,
                                                                      dba_settings):
    """Statistics never reset, no snapshot, no migration: a ten-minute-old index is "age
    unknown", not "drop". Once a snapshot taken at least the minimum age ago holds it (a real
    snapshot, dated back as the test's ground truth), it is old enough to judge."""
    from operations import snapshots

    week = timedelta(days=7)
    with monitoring_connection(foreign_keyed, settings) as conn:
        evidence = indexes.usage_evidence(conn, None, week)
    judged = {f.index_name: f for f in index_findings(foreign_keyed, settings, evidence).judged}
    assert judged["invoice_note"].verdict == "age unknown" and judged["invoice_note"].fix == ""
    assert "nothing shows it existed 7 days ago" in judged["invoice_note"].reason
    with admin_connection(foreign_keyed, dba_settings) as hist, \
            monitoring_connection(foreign_keyed, dba_settings) as mon:
        dbpulse_schema.install(hist, as_actor(dba_settings))
        taken = snapshots.take(mon, hist, as_actor(dba_settings), source=hist.info.dbname,
                               redis_urls=())
        hist.execute("UPDATE dbpulse.snapshots SET taken_at = taken_at - interval '8 days' "
                     "WHERE id = %s", (taken.snapshot_id,))
    with monitoring_connection(foreign_keyed, settings) as conn:
        evidence = indexes.usage_evidence(conn, None, week)
    judged = {f.index_name: f for f in index_findings(foreign_keyed, settings, evidence).judged}
    assert judged["invoice_note"].verdict == "drop"
    assert judged["invoice_note"].fix.startswith("DROP INDEX CONCURRENTLY")


def test_partitioned_indexes_get_the_drop_postgresql_accepts(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE events (id int, kind int, at date) PARTITION BY RANGE (at);
            CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            CREATE INDEX events_kind ON events (kind);
            CREATE INDEX events_kind_twin ON events (kind);
            INSERT INTO events SELECT i, i % 5, date '2025-06-01' + i % 400 FROM generate_series(1, 4000) i;
            ANALYZE events;
        """)
    found = index_findings(scratch_database, settings)
    proposals = found.duplicates + found.unused
    names = {f.index_name for f in proposals}
    assert names == {"events_kind", "events_kind_twin"} - {proposals[0].covered_by} \
        or names == {"events_kind", "events_kind_twin"}
    for finding in proposals:
        assert "CONCURRENTLY" not in finding.fix.split("--")[0]
        assert "ACCESS EXCLUSIVE" in finding.fix and "every partition" in finding.fix
    # attached child indexes are never proposed: PostgreSQL refuses to drop them alone
    assert not any(f.table_name.startswith("events_20") for f in proposals + found.judged)
    after = _run_all_fixes(scratch_database, settings, found)
    # the twin that stayed is itself unused: now it is proposed, and its DROP works too
    assert after.duplicates == [] and [f.index_name for f in after.unused] == [
        proposals[0].covered_by]
    final = _run_all_fixes(scratch_database, settings, after)
    assert final.unused == [] and final.judged == []


def test_fix_sql_is_valid_for_names_that_need_quoting(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute('''
            CREATE SCHEMA "Odd Schema";
            CREATE SCHEMA "a.b";
            CREATE TABLE "Odd Schema"."Weird ""Name""" (id int PRIMARY KEY, "end" int, "offset" int);
            CREATE TABLE "a.b"."seq tbl" (id int PRIMARY KEY,
                                        ref int REFERENCES "Odd Schema"."Weird ""Name""" (id),
                                        "desc" int);
            INSERT INTO "Odd Schema"."Weird ""Name""" SELECT i, i, i FROM generate_series(1, 500) i;
            CREATE INDEX "end" ON "Odd Schema"."Weird ""Name""" ("end", "offset");
            CREATE INDEX "end twin" ON "Odd Schema"."Weird ""Name""" ("end");
            CREATE INDEX "Desc ""x""" ON "a.b"."seq tbl" ("desc");
            ANALYZE;
        ''')
    found = index_findings(scratch_database, settings)
    assert [f.index_name for f in found.duplicates] == ["end twin"]
    assert {f.index_name for f in found.unused} == {'Desc "x"'}  # "end" stays for its twin
    assert [h.table_name for h in found.foreign_keys] == ["seq tbl"]
    assert '"a.b"."seq tbl"' in found.foreign_keys[0].fix
    _run(scratch_database, found.foreign_keys[0].fix)
    after = _run_all_fixes(scratch_database, settings, index_findings(scratch_database, settings))
    assert after.duplicates == [] and after.foreign_keys == []
    assert [f.index_name for f in after.unused] == ["end"]  # its twin went: now it is alone
    # the new foreign-key index has no scans yet, but it is the key's only support
    assert {f.index_name: f.verdict for f in after.judged}["idx_seq tbl_ref"] == "kept"
    _run(scratch_database, after.unused[0].fix)


def test_own_objects_are_hidden_unless_asked_for(scratch_database, dba_settings):
    with admin_connection(scratch_database, dba_settings) as conn:
        dbpulse_schema.install(conn, as_actor(dba_settings))
    shown = index_findings(scratch_database, dba_settings)
    everything = index_findings(scratch_database, dba_settings, include_own=True)
    # DB Pulse's own tables have indexes nobody scanned yet: found only when asked for
    assert indexes.OWN_SCHEMA in {f.schema_name for f in everything.judged}
    assert all(f.schema_name != indexes.OWN_SCHEMA
               for f in shown.judged + shown.duplicates + shown.invalid)


def test_a_replica_identity_index_is_never_dropped_and_twins_keep_one(scratch_database,
                                                                      settings):
    """The published table's replica identity index duplicates its primary key: both stay, and
    writes still replicate. Of three (a) / (a) / (a, b) indexes exactly the widest stays, and the
    index a finding names as staying is never dropped by another."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE t (id int NOT NULL, v text);
            ALTER TABLE t ADD PRIMARY KEY (id);
            CREATE UNIQUE INDEX t_ri ON t (id);
            ALTER TABLE t REPLICA IDENTITY USING INDEX t_ri;
            CREATE PUBLICATION dbpulse_test_pub FOR TABLE t;
            INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g;
            CREATE TABLE u (a int, b int);
            INSERT INTO u SELECT g % 10, g FROM generate_series(1, 1000) g;
            CREATE INDEX u_a1 ON u (a);
            CREATE INDEX u_a2 ON u (a);
            CREATE INDEX u_ab ON u (a, b);
            CLUSTER u USING u_a1;
            ANALYZE t, u;
        """)
    found = {f.index_name: f for f in index_findings(scratch_database, settings).duplicates}
    assert not {"t_ri", "t_pkey"} & set(found)
    assert set(found) == {"u_a1", "u_a2"}
    assert {f.covered_by for f in found.values()} == {"u_ab"}
    assert "CLUSTER uses this one" in found["u_a1"].reason
    after = _run_all_fixes(scratch_database, settings, index_findings(scratch_database, settings),
                           ["duplicates"])
    assert after.duplicates == []
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("UPDATE t SET v = 'w' WHERE id = 1; DELETE FROM t WHERE id = 2")
        left = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes "
                                           "WHERE tablename IN ('t', 'u')")}
        conn.execute("DROP PUBLICATION dbpulse_test_pub")
    assert left == {"t_pkey", "t_ri", "u_ab"}


def test_scan_totals_are_the_user_tables_view_summed(scratch_database):
    """The agent's index and sequential scan totals: what pg_stat_user_tables sums to, over
    plain, partitioned and materialized relations and a schema of their own; none of the
    system catalogues' scans."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE SCHEMA other;
            CREATE TABLE other.t (id int PRIMARY KEY, v int);
            INSERT INTO other.t SELECT i, i FROM generate_series(1, 500) i;
            CREATE TABLE p (id int, at int) PARTITION BY RANGE (at);
            CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
            CREATE INDEX p_id ON p (id);
            INSERT INTO p SELECT i, i % 100 FROM generate_series(1, 300) i;
            CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM other.t;
            CREATE INDEX mv_id ON mv (id);
            ANALYZE""")
        conn.execute("SET enable_seqscan = off")
        for i in range(7):
            conn.execute("SELECT * FROM other.t WHERE id = %s", (i,))
            conn.execute("SELECT * FROM p WHERE id = %s", (i,))
            conn.execute("SELECT * FROM mv WHERE id = %s", (i,))
        conn.execute("SET enable_seqscan = on")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM other.t")
        conn.execute("SELECT count(*) FROM pg_class")  # a catalogue's scans are not counted
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        truth = conn.execute("SELECT sum(idx_scan)::bigint, sum(seq_scan)::bigint "
                             "FROM pg_stat_user_tables").fetchone()
        totals = indexes.scan_totals(conn)
    assert truth[0] >= 21 and truth[1] >= 3
    assert totals == truth


def test_definitions_are_the_servers_from_the_method_on(scratch_database, settings):
    """A page's definitions: pg_get_indexdef's text after the names, whatever they hold."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE SCHEMA "Odd Schema";
            CREATE TABLE "Odd Schema"."Odd Table" (a int, "B c" text, d int);
            CREATE INDEX "weird USING idx" ON "Odd Schema"."Odd Table"
                (a DESC, lower("B c")) INCLUDE (d) WHERE a > 0;
            CREATE UNIQUE INDEX u_a ON "Odd Schema"."Odd Table" (a) NULLS NOT DISTINCT;
            CREATE TABLE p (k int, v int) PARTITION BY RANGE (k);
            CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
            CREATE INDEX p_v ON p (v)""")
        oids = dict(conn.execute("""
            SELECT relname, oid FROM pg_class
            WHERE relname IN ('weird USING idx', 'u_a', 'p_v', 'p1_v_idx')""").fetchall())
    with monitoring_connection(scratch_database, settings) as conn:
        words = indexes.definitions(conn, list(oids.values()) + [1])  # 1: no such index
    assert {name: words[oid] for name, oid in oids.items()} == {
        "weird USING idx": 'btree (a DESC, lower("B c")) INCLUDE (d) WHERE (a > 0)',
        "u_a": "UNIQUE btree (a) NULLS NOT DISTINCT",
        "p_v": "btree (v)", "p1_v_idx": "btree (v)"}
    assert 1 not in words

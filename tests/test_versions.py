"""The same core on PostgreSQL 15 (Debian's), next to the suite's PostgreSQL 18: the
version-dependent parts (pg_stat_statements columns, EXPLAIN of a generic plan, last_idx_scan)
and the hypopg what-if, which the embedded server does not ship."""

import psycopg
import pytest

from foundation import capabilities
from foundation.connections import monitoring_connection
from operations import checks
from reads import indexes, statements, whatif
from reads.statements import ExplainError

Q1 = ("SELECT * FROM message_events WHERE user_id = $1 AND autopilot_status = $2 "
      "ORDER BY created_at DESC LIMIT $3")
PHASE1_INDEX_1 = ("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_message_events_user_status_created "
                  "ON public.message_events (user_id, autopilot_status, created_at DESC);")


def _run_q1(url, rounds: int = 1):
    with psycopg.connect(url) as conn:
        user = conn.execute("SELECT id FROM users ORDER BY idx LIMIT 1").fetchone()[0]
        for status in ("sent", "pending", "failed") * rounds:
            conn.execute("SELECT * FROM message_events WHERE user_id = %s AND autopilot_status = %s"
                         " ORDER BY created_at DESC LIMIT %s", (user, status, 50)).fetchall()


def test_capabilities_and_statements_on_15(pg15_url, settings):
    _run_q1(pg15_url)
    with monitoring_connection(pg15_url, settings) as conn:
        caps = capabilities.detect(conn)
        ext = caps.extension("pg_stat_statements")
        top = statements.top_statements(conn, ext, statements.StatementFilter(text="autopilot"))
        info = statements.statements_info(conn, ext)
        plan = statements.explain_generic(conn, top.iloc[0]["query"], caps.server_version_num)
    assert caps.server_version_num // 10000 == 15
    assert statements.entries_file(ext.installed_version).name == "entries_1.8.sql"
    assert caps.extension("hypopg").installed
    assert top.iloc[0]["calls"] == 3 and top.iloc[0]["total_plan_ms"] is not None
    assert info.stats_reset is not None  # pg_stat_statements_info exists from 1.9
    assert "message_events" in plan  # through PREPARE + force_generic_plan


def test_checks_on_15(pg15_url, settings):
    with monitoring_connection(pg15_url, settings) as conn:
        caps = capabilities.detect(conn)
        frame = indexes.list_indexes(conn, limit=100)  # the least scanned, as the page shows
        findings = {f.check: f for f in checks.run_all(conn, caps, settings)}
    assert len(frame) > 3 and frame["last_scan"].isna().all()  # last_idx_scan arrived in 16
    assert not [f for f in findings.values() if f.severity == "grey"]
    assert "public.idx_contacts_user_id" in findings["duplicate_indexes"].objects
    assert findings["bloat"].objects[0] == "public.dm_conversations"


def test_what_if_with_a_phase_1_index(pg15_url, settings):
    with monitoring_connection(pg15_url, settings) as conn:
        hypo = capabilities.detect(conn).extension("hypopg")
        result = whatif.what_if(conn, hypo, Q1, PHASE1_INDEX_1, conn.info.server_version)
        # nothing stays behind in the session or the catalogue
        left = conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone()[0]
        real = conn.execute("SELECT to_regclass('idx_message_events_user_status_created')"
                            ).fetchone()[0]
    assert result.uses_candidate and "Sort" in result.plan_before and "Sort" not in result.plan_after
    assert result.cost_after < result.cost_before and result.improvement > 0
    assert left == 0 and real is None


def test_what_if_refuses_bad_candidates(pg15_url, settings):
    with monitoring_connection(pg15_url, settings) as conn:
        hypo = capabilities.detect(conn).extension("hypopg")
        for bad in ("DROP TABLE leads", "CREATE INDEX a ON leads (id); DROP TABLE leads"):
            with pytest.raises(ExplainError, match="one CREATE INDEX"):
                whatif.what_if(conn, hypo, Q1, bad, conn.info.server_version)
        with pytest.raises(ExplainError, match="What-if failed"):
            whatif.what_if(conn, hypo, Q1, "CREATE INDEX ON no_such_table (x)",
                           conn.info.server_version)
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] > 0


def test_what_if_without_hypopg_says_how_to_get_it(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        hypo = capabilities.detect(conn).extension("hypopg")
        if hypo.installed:
            pytest.skip("this server has hypopg")
        with pytest.raises(ExplainError, match="postgresql-NN-hypopg"):
            whatif.what_if(conn, hypo, Q1, PHASE1_INDEX_1, conn.info.server_version)


def test_what_if_on_the_slow_query_page(pg15_logins, redis_url, monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    _run_q1(pg15_logins.app_url)
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    for key, value in pg15_logins.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DBPULSE_ROLE", "dba")
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/slow_queries.py").run()
    [text_filter] = [t for t in at.text_input if t.label == "Statement text contains"]
    text_filter.input("autopilot_status").run()
    [role_filter] = [t for t in at.text_input if t.label == "Role (empty: all roles)"]
    role_filter.input("salesflow_app").run()  # planned as the application, on the plan login
    [candidate] = [t for t in at.text_input if t.label == "Candidate"]
    candidate.input(PHASE1_INDEX_1)
    [compare] = [b for b in at.button if b.label == "Compare plans"]
    compare.click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert "Planner uses it" in metrics, [w.value for w in at.warning]
    assert metrics["Planner uses it"] == "yes"
    st.cache_data.clear()

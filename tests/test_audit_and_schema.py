import psycopg
import pytest

from foundation.connections import OWN_STATEMENT_TAG, admin_connection
from foundation.roles import PermissionDenied
from operations import audit, dbpulse_schema
from tests.conftest import as_actor


def _audit_rows(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT actor, role, action, target, object_name, outcome, detail, "
                            "duration_ms FROM dbpulse.audit_log ORDER BY id").fetchall()


def test_viewer_cannot_install_the_schema(scratch_database, settings):
    with admin_connection(scratch_database, settings) as conn:
        with pytest.raises(PermissionDenied, match="needs the DBA role"):
            dbpulse_schema.install(conn, as_actor(settings))
        assert conn.execute("SELECT to_regnamespace('dbpulse')").fetchone()[0] is None


def test_install_is_idempotent_and_audited(scratch_database, dba_settings):
    with admin_connection(scratch_database, dba_settings) as conn:
        first = dbpulse_schema.install(conn, as_actor(dba_settings))
        second = dbpulse_schema.install(conn, as_actor(dba_settings))
    assert first == [path.name for _, _, path in dbpulse_schema.schema_files()]
    assert second == []
    rows = _audit_rows(scratch_database)
    assert len(rows) == 1
    actor, role, action, target, object_name, outcome, detail, duration = rows[0]
    assert (actor, role, action, target, outcome) == ("tester", "dba", "install_schema", "t", "ok")
    assert "001_audit_log.sql" in detail and duration >= 0


def test_the_install_is_none_of_the_applications_statements(scratch_database, dba_settings):
    """Every statement of the schema files is sent alone and tagged: none stays among the
    statements pg_stat_statements shows as the application's."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database "
                     "WHERE datname = current_database()")  # this scratch database only
    with admin_connection(scratch_database, dba_settings) as conn:
        dbpulse_schema.install(conn, as_actor(dba_settings))
    with psycopg.connect(scratch_database) as conn:
        texts = [row[0] for row in conn.execute(
            "SELECT query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND query ~* 'dbpulse\\.'")]
    untagged = [t for t in texts if not t.endswith(OWN_STATEMENT_TAG)]
    assert untagged == []
    assert sum("CREATE TABLE IF NOT EXISTS dbpulse." in t for t in texts) >= 10


def test_audited_records_success_and_failure(scratch_database, dba_settings):
    with admin_connection(scratch_database, dba_settings) as conn:
        dbpulse_schema.install(conn, as_actor(dba_settings))
        ann = as_actor(dba_settings, person="ann")
        with audit.audited(conn, ann, "demo_ok", object_name='public."Odd Name"') as note:
            note["detail"] = "fine"
        with pytest.raises(psycopg.errors.DivisionByZero):
            with audit.audited(conn, ann, "demo_fail"):
                with conn.transaction():
                    conn.execute("CREATE TABLE half_done (a int)")
                    conn.execute("SELECT 1 / 0")
        with pytest.raises(ValueError, match="autocommit"):
            with conn.transaction():
                with audit.audited(conn, ann, "nested"):
                    pass
        frame = audit.actions(conn)
    assert list(frame["action"][:2]) == ["demo_fail", "demo_ok"]
    failed = frame.iloc[0]
    assert failed["outcome"] == "error" and "DivisionByZero" in failed["detail"]
    assert frame.iloc[1]["object_name"] == 'public."Odd Name"'
    assert "nested" not in set(frame["action"])
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None

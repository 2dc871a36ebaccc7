import psycopg
from psycopg import sql

from foundation import capabilities
from foundation.connections import monitoring_connection
from tests.conftest import login_role


def test_detects_version_and_pg_stat_statements(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        caps = capabilities.detect(conn)
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        ext_version = conn.execute("SELECT extversion FROM pg_extension "
                                   "WHERE extname = 'pg_stat_statements'").fetchone()[0]
    assert caps.server_version_num == version_num
    pss = caps.extension("pg_stat_statements")
    assert pss.installed_version == ext_version and pss.schema == "extensions"  # as on Supabase
    assert caps.pg_stat_statements_loaded is True and caps.has_pg_stat_statements
    assert not [i for i in caps.issues if i.name == "pg_stat_statements"]


def test_database_without_pg_stat_statements(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        caps = capabilities.detect(conn)
    assert not caps.extension("pg_stat_statements").installed
    assert caps.pg_stat_statements_loaded is None and not caps.has_pg_stat_statements
    [issue] = [i for i in caps.issues if i.name == "pg_stat_statements"]
    assert issue.severity == "red"
    assert "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" in issue.fix


def test_extension_in_an_extensions_schema_like_supabase(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION pg_stat_statements SCHEMA extensions")
    with monitoring_connection(scratch_database, settings) as conn:
        caps = capabilities.detect(conn)
    assert caps.extension("pg_stat_statements").schema == "extensions"
    assert caps.pg_stat_statements_loaded is True


def test_role_without_monitoring_grants(scratch_database, settings):
    role = "dbpulse_test_limited"
    with login_role(scratch_database, role, "limited") as limited:
        with monitoring_connection(limited, settings) as conn:
            caps = capabilities.detect(conn)
        assert not caps.is_superuser and not caps.can_read_all_stats
        [issue] = [i for i in caps.issues if i.name == "pg_read_all_stats"]
        assert issue.fix == f"GRANT pg_monitor TO {role};"
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
        with monitoring_connection(limited, settings) as conn:
            assert capabilities.detect(conn).can_read_all_stats


def test_missing_optional_extensions_say_how_to_get_them(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        caps = capabilities.detect(conn)
    for name in ("hypopg", "pg_cron"):
        if not caps.extension(name).installed:
            [issue] = [i for i in caps.issues if i.name == name]
            assert issue.severity == "info" and issue.fix == f"CREATE EXTENSION IF NOT EXISTS {name};"


def test_names_in_shown_sql_are_quoted():
    from foundation.identifiers import qualified, quote_ident

    assert quote_ident("monitor") == "monitor"
    assert quote_ident('Odd "Role"') == '"Odd ""Role"""'
    assert quote_ident("user") == '"user"'
    assert qualified("public", "Leads 2024") == 'public."Leads 2024"'


def test_installed_but_not_preloaded_is_told_apart(settings):
    """On a server without pg_stat_statements in shared_preload_libraries, CREATE EXTENSION
    works but the view records nothing: the probe (which reads it without the texts) says
    so, with the fix."""
    from demo.stack import EmbeddedStack, free_port
    from tests.conftest import TEST_DIR

    # under the suite's own folder, not pytest's tmp_path: pytest keeps that private to root
    # (0700), where the server's system user cannot reach
    stack = EmbeddedStack(root=TEST_DIR / "test-no-preload", pg_port=free_port(),
                          database="postgres",
                          with_redis=False, extra_settings={"shared_preload_libraries": "''"})
    status = stack.up()
    try:
        url = status.state.database_url("postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        with monitoring_connection(url, settings) as conn:
            caps = capabilities.detect(conn)
    finally:
        stack.destroy()
    assert caps.extension("pg_stat_statements").installed
    assert caps.pg_stat_statements_loaded is False and not caps.has_pg_stat_statements
    issue = next(i for i in caps.issues if i.name == "pg_stat_statements")
    assert "not loaded" in issue.message and "shared_preload_libraries" in issue.fix

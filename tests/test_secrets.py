"""A planted password appears nowhere DB Pulse writes or shows: mistyped connection strings in
the CLI's text and JSON and on every page, and a CREATE ROLE … PASSWORD statement in the slow
query list, the statement detail, stored snapshots and the weekly report."""

import os
import subprocess
import sys

import psycopg
from streamlit.testing.v1 import AppTest

from foundation import capabilities
from foundation.connections import admin_connection, monitoring_connection
from operations import dbpulse_schema, snapshots
from reads import statements
from tests.conftest import PROJECT_ROOT, as_actor, each_page

PLANTED = "Planted-Pw-7731"
TYPOS = {"DATABASE_URL": f"postgress://app:{PLANTED}@127.0.0.1:1/db",
         "DATABASE_ADMIN_URL": f"postgresq://admin:{PLANTED}@127.0.0.1:1/db",
         "REDIS_URL": f"rediss//:{PLANTED}@127.0.0.1:1/0",
         "HISTORY_DATABASE_URL": f"postgres:/h:{PLANTED}@127.0.0.1:1/x"}


def _all_text(at: AppTest) -> str:
    parts = [str(getattr(e, "value", "")) for kind in ("markdown", "caption", "code", "error",
                                                        "warning", "info", "success", "json",
                                                        "text", "metric", "exception")
             for e in getattr(at, kind)]
    return "\n".join(parts)


def test_mistyped_urls_never_show_their_password(tmp_path, monkeypatch):
    env = {**os.environ, **TYPOS, "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"),
           "DBPULSE_ROLE": "dba"}
    for args in (["check"], ["check", "--json"], ["snapshot"], ["migrate", "status"],
                 ["refresh", "--stale"], ["report", "--out", str(tmp_path / "r.md")]):
        result = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args], env=env,
                                capture_output=True, text=True, timeout=120)
        assert PLANTED not in result.stdout + result.stderr, args
        assert result.returncode != 0 or args[0] == "check", (args, result.stderr)
    for key, value in {**TYPOS, "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"),
                       "DBPULSE_ROLE": "dba"}.items():
        monkeypatch.setenv(key, value)
    for page, at in each_page(timeout=60):
        assert PLANTED not in _all_text(at), page


def test_a_password_in_a_statement_is_masked_everywhere(scratch_database, dba_settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(f"CREATE ROLE planted_secret LOGIN PASSWORD '{PLANTED}'")
        conn.execute(f"ALTER ROLE planted_secret PASSWORD $x${PLANTED}$x$")
    try:
        with monitoring_connection(scratch_database, dba_settings) as conn:
            ext = capabilities.detect(conn).extension("pg_stat_statements")
            top = statements.top_statements(conn, ext, statements.StatementFilter(
                text="planted_secret", limit=50))
            assert len(top) == 2 and not top["query"].str.contains(PLANTED, regex=False).any()
            assert top["query"].str.contains("PASSWORD '***'", regex=False).all()
            row = top.iloc[0]
            detail = statements.statement_detail(conn, ext, int(row.queryid), int(row.userid),
                                                 int(row.dbid))
            assert PLANTED not in detail["query"]
        with admin_connection(scratch_database, dba_settings) as hist, \
                monitoring_connection(scratch_database, dba_settings) as mon:
            dbpulse_schema.install(hist, as_actor(dba_settings))
            snapshots.take(mon, hist, as_actor(dba_settings), source="secrets", redis_urls=())
        with psycopg.connect(scratch_database) as conn:
            stored = conn.execute("SELECT string_agg(query, ' ') FROM dbpulse.statement_texts"
                                  ).fetchone()[0]
            assert "planted_secret" in stored and PLANTED not in stored
        # a text stored by an older DB Pulse is masked by the next schema install
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("INSERT INTO dbpulse.statement_texts (queryid, userid, query) "
                         "VALUES (-1, 10, %s)", (f"ALTER USER x PASSWORD '{PLANTED}'",))
        with admin_connection(scratch_database, dba_settings) as conn:
            dbpulse_schema.install(conn, as_actor(dba_settings))
            assert conn.execute("SELECT query FROM dbpulse.statement_texts WHERE queryid = -1"
                                ).fetchone()[0] == "ALTER USER x PASSWORD '***'"
    finally:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS planted_secret")


# Every SQL form of a password PostgreSQL accepts (and a few it would not, as they reach
# pg_stat_statements or a log anyway): each text with the secret in it.
CORPUS = [
    ("CREATE ROLE a LOGIN PASSWORD 'Sec01'", "Sec01"),
    ("ALTER ROLE a PASSWORD'Sec02'", "Sec02"),
    ("ALTER ROLE a PASSWORD U&'Sec03'", "Sec03"),
    ("ALTER ROLE a PASSWORD U&'d\\0061Sec04' UESCAPE '\\'", "Sec04"),
    ("ALTER ROLE a PASSWORD E'Sec05\\'x'", "Sec05"),
    ("ALTER ROLE a PASSWORD e'Sec06'", "Sec06"),
    ("ALTER ROLE a PASSWORD $$Sec07$$", "Sec07"),
    ("ALTER ROLE a PASSWORD $tag$Sec08 'q'$tag$", "Sec08"),
    ("ALTER ROLE a PASSWORD /* the new one */ 'Sec09'", "Sec09"),
    ("ALTER ROLE a PASSWORD -- the new one\n 'Sec10'", "Sec10"),
    ("ALTER USER a WITH ENCRYPTED PASSWORD 'Sec11'", "Sec11"),
    ("CREATE USER a WITH PASSWORD 'Sec12' VALID UNTIL '2030-01-01'", "Sec12"),
    ("alter role a password 'sec13'", "sec13"),
    ("ALTER ROLE a PaSsWoRd 'Sec14'", "Sec14"),
    ("ALTER ROLE \"Odd Name\" PASSWORD 'Sec15''q'", "Sec15"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=db password=Sec16 dbname=x' PUBLICATION p",
     "Sec16"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=db password=''Sec17 x'' dbname=x' PUBLICATION p",
     "Sec17"),
    ("SELECT dblink_connect('c', 'host=db user=u password=Sec18')", "Sec18"),
    ("SELECT dblink_connect($$host=db password=Sec19$x$$)", "Sec19"),
    ("CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'Sec20')", "Sec20"),
    ("ALTER USER MAPPING FOR u SERVER s OPTIONS (SET password 'Sec21')", "Sec21"),
    ("CREATE USER MAPPING FOR u SERVER s OPTIONS (\"password\" 'Sec22')", "Sec22"),
    ("SELECT dblink('postgresql://u:Sec23@db/x', 'select 1')", "Sec23"),
    ("ALTER ROLE a PASSWORD 'Sec24 never closed", "Sec24"),
    ("ALTER ROLE a PASSWORD 'Sec25'; ALTER ROLE b PASSWORD 'Sec26'", "Sec26"),
    ("ALTER ROLE a PASSWORD 'Sec27'; ALTER ROLE b PASSWORD 'Sec28'", "Sec27"),
    ("ALTER ROLE é PASSWORD 'Sec29é'", "Sec29"),
]


def test_every_sql_form_of_a_password_is_masked():
    from foundation.secrets import redact_text

    for text, secret in CORPUS:
        masked = redact_text(text)
        assert secret not in masked and secret.lower() not in masked.lower(), (text, masked)
        assert "***" in masked, (text, masked)
    # what is not a secret stays as it was
    for plain in ("SELECT password_encryption FROM t WHERE note = 'password'",
                  "SELECT 'a password: no' AS password",
                  "ALTER ROLE a VALID UNTIL 'infinity'"):
        assert redact_text(plain) == plain


def test_executed_password_forms_are_masked_on_the_page_in_history_and_the_report(
        scratch_database, dba_settings, tmp_path):
    """The forms PostgreSQL runs, for real: pg_stat_statements keeps their literal text; the
    Slow queries list, the stored history and the weekly report never show it."""
    runnable = [t for t, _ in CORPUS[:15]]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute('CREATE ROLE a; CREATE ROLE "Odd Name"')
        for text in runnable:
            conn.execute(text.replace("CREATE ROLE a LOGIN", "ALTER ROLE a LOGIN")
                         .replace("CREATE USER a WITH", "ALTER USER a WITH"))
        raw = conn.execute("SELECT string_agg(query, ' ') FROM pg_stat_statements").fetchone()[0]
    secrets = [s for t, s in CORPUS[:15]]
    assert sum(s.lower() in raw.lower() for s in secrets) >= 10  # the ground truth leaks
    try:
        with monitoring_connection(scratch_database, dba_settings) as conn:
            ext = capabilities.detect(conn).extension("pg_stat_statements")
            top = statements.top_statements(conn, ext, statements.StatementFilter(limit=200))
        shown = " ".join(top["query"].astype(str))
        assert not [s for s in secrets if s.lower() in shown.lower()]
        with admin_connection(scratch_database, dba_settings) as hist, \
                monitoring_connection(scratch_database, dba_settings) as mon:
            dbpulse_schema.install(hist, as_actor(dba_settings))
            for _ in range(2):  # a report needs a difference
                snapshots.take(mon, hist, as_actor(dba_settings), source=hist.info.dbname,
                               redis_urls=())
            stored = hist.execute("SELECT string_agg(query, ' ') FROM dbpulse.statement_texts"
                                  ).fetchone()[0]
        assert "ALTER ROLE" in stored
        assert not [s for s in secrets if s.lower() in stored.lower()]
        env = {**os.environ, "DATABASE_URL": scratch_database, "DBPULSE_ROLE": "dba",
               "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")}
        for out in ("r.md", "r.html"):
            result = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "report",
                                     "--out", str(tmp_path / out)], env=env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            report = (tmp_path / out).read_text()
            assert not [s for s in secrets if s.lower() in report.lower()]
    finally:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute('DROP ROLE IF EXISTS a; DROP ROLE IF EXISTS "Odd Name"')

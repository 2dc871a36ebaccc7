"""The privilege boundary of plans is a login, never SET ROLE: a function an application role
planted, reached through EXPLAIN ANALYZE, a generic plan or a what-if plan, returns to the
session's login with RESET ROLE and tries to write a file, run a program and create a role. On
the plan login none of it happens, on PostgreSQL 18 and 15; through SET ROLE on a superuser's
session (the control, the way DB Pulse used to plan) all of it does, so each test can fail."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from demo.stack import create_database, database_url_for
from foundation import plan_login
from foundation.config import Settings, Target
from foundation.connections import DatabaseProblem
from foundation.roles import Actor
from operations import actions

SETTINGS = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=5)


def _attack_body(tag: str, out: Path) -> str:
    """plpgsql that leaves the statement's role and tries three things only a privileged login
    may do, each on its own so one refusal does not stop the next."""
    return f"""
        BEGIN
          RESET ROLE;
          BEGIN COPY (SELECT 'file') TO '{out}.file'; EXCEPTION WHEN OTHERS THEN NULL; END;
          BEGIN COPY (SELECT 1) TO PROGRAM 'id > {out}.program';
          EXCEPTION WHEN OTHERS THEN NULL; END;
          BEGIN EXECUTE 'CREATE ROLE pwned_{tag}'; EXCEPTION WHEN OTHERS THEN NULL; END;
          RETURN 1;
        END"""


class Planted:
    """A database where the application role `app` planted sales_report() (called by a
    statement) and sales_const() (IMMUTABLE, folded by the planner), and a plan login that is
    granted `app` and nothing else."""

    def __init__(self, server_url: str, extensions: tuple[str, ...]):
        self.tag = uuid.uuid4().hex[:8]
        self.db = f"planted_{self.tag}"
        self.out = Path("/tmp") / f"dbpulse-attack-{self.tag}"
        self.server_url = server_url
        self.url = create_database(server_url, self.db, "pg_stat_statements", *extensions)
        self.app, self.plan = f"salesapp_{self.tag}", f"plan_{self.tag}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            for role, extra in ((self.app, ""), (self.plan, " NOINHERIT")):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'" + extra).format(
                    sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(
                sql.Identifier(self.app)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(self.app),
                                                          sql.Identifier(self.plan)))
            conn.execute("SELECT pg_stat_statements_reset()")
        with psycopg.connect(self.login_url(self.app), autocommit=True) as conn:
            body = _attack_body(self.tag, self.out)
            conn.execute(f"CREATE FUNCTION public.sales_report() RETURNS int LANGUAGE plpgsql "
                         f"SECURITY INVOKER AS $fn${body}$fn$")
            # an IMMUTABLE function may not RESET ROLE itself; it calls one that does
            conn.execute("CREATE FUNCTION public.sales_const() RETURNS int LANGUAGE plpgsql "
                         "IMMUTABLE AS $fn$ BEGIN RETURN public.sales_report(); END $fn$")
            conn.execute("CREATE TABLE public.orders (id int)")
            for _ in range(2):  # the application calls them: pg_stat_statements holds both
                conn.execute("SELECT public.sales_report()")
                conn.execute("SELECT count(*) FROM public.orders WHERE public.sales_const() = %s",
                             (1,))
        self.clean()  # the application's own calls ran as itself and could do nothing

    def login_url(self, role: str) -> str:
        params = psycopg.conninfo.conninfo_to_dict(self.url)
        return psycopg.conninfo.make_conninfo(**{**params, "user": role, "password": "pw"})

    def statement(self, like: str) -> tuple[str, int]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "SELECT query, userid::int FROM pg_stat_statements WHERE query LIKE %s "
                "AND query NOT LIKE '%%CREATE%%' AND dbid = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", (like,)).fetchone()

    def who(self, role: str = "dba", plan_url: str | None = None) -> Actor:
        target = Target("t", self.url, self.url,
                        plan_url=self.login_url(self.plan) if plan_url is None else plan_url)
        return Actor("tester", role, target, replace(SETTINGS, role=role))

    def escaped(self) -> list[str]:
        """What the attack achieved: files written, programs run, roles created."""
        done = [kind for kind in ("file", "program") if Path(f"{self.out}.{kind}").exists()]
        with psycopg.connect(self.url) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                            (f"pwned_{self.tag}",)).fetchone():
                done.append("role")
        return done

    def clean(self) -> None:
        for kind in ("file", "program"):
            try:
                os.unlink(f"{self.out}.{kind}")
            except FileNotFoundError:
                pass
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                sql.Identifier(f"pwned_{self.tag}")))

    def drop(self) -> None:
        self.clean()
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.db)))
            for role in (self.plan, self.app):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(params=["pg18", "pg15"])
def planted(request):
    if request.param == "pg18":
        server = request.getfixturevalue("servers")[0]
        extensions = ()
    else:
        server = database_url_for(request.getfixturevalue("pg15_url"), "postgres")
        extensions = ("hypopg",)
    found = Planted(server, extensions)
    yield found
    found.drop()


def _old_way(planted: Planted, run: str, role: str | None, read_only: bool) -> None:
    """The control: the statement planned on the superuser's session behind SET LOCAL ROLE (or
    on a superuser monitoring login), as DB Pulse did before the plan login."""
    with psycopg.connect(planted.url, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            if read_only:
                conn.execute("SET TRANSACTION READ ONLY")
            if role:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute(run)


def test_explain_analyze_cannot_leave_the_statements_role(planted):
    query, userid = planted.statement("%sales_report%")
    _old_way(planted, "EXPLAIN ANALYZE " + query, planted.app, read_only=False)
    assert planted.escaped() == ["file", "program"]  # RESET ROLE returned to the superuser
    planted.clean()
    plan = actions.explain_analyze(planted.who(), query, [], userid)
    assert "actual" in plan and "Result" in plan
    assert planted.escaped() == []
    with psycopg.connect(planted.url) as conn:
        rows = conn.execute("SELECT action, outcome FROM dbpulse.audit_log "
                            "WHERE action = 'explain_analyze'").fetchall()
    assert rows == [("explain_analyze", "ok")]


def test_a_viewers_generic_plan_runs_no_program(planted):
    query, userid = planted.statement("%sales_const%")
    version = psycopg.connect(planted.url).info.server_version
    generic = (f"EXPLAIN (GENERIC_PLAN) {query}" if version >= 160000 else
               f"PREPARE p AS {query}; EXPLAIN EXECUTE p(NULL)")
    if version < 160000:  # PREPARE needs the generic plan forced for the constant to fold
        generic = "SET LOCAL plan_cache_mode = force_generic_plan; " + generic
    _old_way(planted, generic, None, read_only=True)
    assert "program" in planted.escaped()  # folding sales_const() ran it in a read-only plan
    planted.clean()
    actions.install_schema(planted.who())
    with pytest.raises(DatabaseProblem, match="permission denied for table orders"):
        # the function left the application's role for the plan login, which may read nothing
        actions.explain_generic(planted.who("viewer"), query, userid)
    assert planted.escaped() == []
    with psycopg.connect(planted.login_url(planted.app), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM public.orders WHERE id = %s", (7,))
    plain, app = planted.statement("%orders WHERE id =%")
    plan = actions.explain_generic(planted.who("viewer"), plain, app)
    assert "Seq Scan on orders" in plan
    with psycopg.connect(planted.url) as conn:
        rows = conn.execute("SELECT role, outcome FROM dbpulse.audit_log "
                            "WHERE action = 'explain_generic' ORDER BY id").fetchall()
    assert rows == [("viewer", "error"), ("viewer", "ok")]


def test_a_what_if_plan_runs_no_program(planted):
    with psycopg.connect(planted.url) as conn:
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").fetchone():
            pytest.skip("hypopg is installed on the PostgreSQL 15 server only")
    query, userid = planted.statement("%sales_const%")
    with pytest.raises(DatabaseProblem, match="permission denied for table orders"):
        actions.what_if(planted.who(), query, "CREATE INDEX ON public.orders (id)", userid)
    assert planted.escaped() == []
    with psycopg.connect(planted.login_url(planted.app), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM public.orders WHERE id = %s", (7,))
    plain, app = planted.statement("%orders WHERE id =%")
    result = actions.what_if(planted.who(), plain, "CREATE INDEX ON public.orders (id)", app)
    assert result.cost_before > 0 and "orders" in result.plan_before


def _refusal(planted: Planted, plan_url: str, query: str, userid: int) -> str:
    with pytest.raises(DatabaseProblem) as caught:
        actions.explain_analyze(planted.who(plan_url=plan_url), query, [], userid)
    assert caught.value.kind == "refused"
    assert planted.escaped() == []
    return caught.value.message


def test_a_plan_login_with_more_rights_is_refused_with_the_setup(planted):
    query, userid = planted.statement("%sales_report%")
    assert "no plan login" in _refusal(planted, "", query, userid)
    assert "is a superuser" in _refusal(planted, planted.url, query, userid)
    grants = [("pg_execute_server_program", "member of pg_execute_server_program"),
              ("CREATEROLE", "has CREATEROLE"),
              ("orders", "table rights of its own"),
              ("pg_monitor", "may take roles")]
    for grant, said in grants:
        with psycopg.connect(planted.url, autocommit=True) as conn:
            statement = {"CREATEROLE": "ALTER ROLE {plan} CREATEROLE",
                         "orders": "GRANT SELECT ON public.orders TO {plan}"}.get(
                grant, f"GRANT {grant} TO {{plan}}")
            undo = {"CREATEROLE": "ALTER ROLE {plan} NOCREATEROLE",
                    "orders": "REVOKE SELECT ON public.orders FROM {plan}"}.get(
                grant, f"REVOKE {grant} FROM {{plan}}")
            conn.execute(sql.SQL(statement).format(plan=sql.Identifier(planted.plan)))
        message = _refusal(planted, planted.login_url(planted.plan), query, userid)
        assert said in message and "CREATE ROLE dbpulse_plan" in message, message
        with psycopg.connect(planted.url, autocommit=True) as conn:
            conn.execute(sql.SQL(undo).format(plan=sql.Identifier(planted.plan)))
    with psycopg.connect(planted.url, autocommit=True) as conn:  # not granted the app's role
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(planted.app),
                                                         sql.Identifier(planted.plan)))
    message = _refusal(planted, planted.login_url(planted.plan), query, userid)
    assert f"GRANT {planted.app} TO {planted.plan}" in message
    with psycopg.connect(planted.url) as conn:
        outcomes = {r[0] for r in conn.execute("SELECT outcome FROM dbpulse.audit_log "
                                               "WHERE action = 'explain_analyze'")}
    assert outcomes == {"refused"}


def test_a_superusers_statement_is_never_planned(planted):
    with psycopg.connect(planted.url, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM pg_class WHERE relpages > 12345")
    query, userid = planted.statement("%relpages >%")
    assert "never plans" in _refusal(planted, planted.login_url(planted.plan), query, userid)


def test_the_check_reads_the_login_not_the_current_role(planted):
    """SET ROLE on a superuser's session does not make it a plan login."""
    with psycopg.connect(planted.url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(planted.plan)))
        userid = conn.execute("SELECT oid::int FROM pg_roles WHERE rolname = %s",
                              (planted.app,)).fetchone()[0]
        with pytest.raises(plan_login.PlanRefused, match="is a superuser"):
            plan_login.check(conn, userid)

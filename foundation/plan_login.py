"""The plan login: the only place where statement text DB Pulse did not write is planned or run.

A privilege boundary is a login, never SET ROLE. Inside one session code can return to the
login's rights (RESET ROLE and SET SESSION AUTHORIZATION are checked against the login), and the
planner runs IMMUTABLE functions while it plans. So a statement taken from pg_stat_statements
(generic plans, what-if plans, EXPLAIN ANALYZE) runs only on the target's plan login
(`DATABASE_PLAN_URL`, `database_plan_url`), checked at every use: not a superuser, not a member
of a superuser role or of the server-file/program roles, no role attribute the statement's role
lacks, no role the statement's role is not in, and no table of its own or granted to it alone.
Whatever the statement does, it cannot get more than the role that ran it. Never the monitoring
or admin connection: without a plan login that passes, the plan is refused with the setup.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg import sql

from foundation.config import Settings, Target
from foundation.connections import describe_error, open_plan
from foundation.identifiers import quote_ident
from foundation.roles import Refused

SERVER_FILE_ROLES = ("pg_execute_server_program", "pg_write_server_files", "pg_read_server_files")
ATTRIBUTES = ("rolcreaterole", "rolcreatedb", "rolbypassrls", "rolreplication")


class PlanRefused(Refused):
    """No plan login that may run this statement; the message says what to set up."""


def setup_sql(statement_role: str) -> str:
    """The setup a DBA runs once per target (and a GRANT per application role).

    >>> print(setup_sql("salesapp"))
    CREATE ROLE dbpulse_plan LOGIN NOINHERIT PASSWORD '...';
    GRANT salesapp TO dbpulse_plan;
    -- then DATABASE_PLAN_URL (or database_plan_url in the target) = postgresql://dbpulse_plan:...@host/db
    """
    return ("CREATE ROLE dbpulse_plan LOGIN NOINHERIT PASSWORD '...';\n"
            f"GRANT {quote_ident(statement_role)} TO dbpulse_plan;\n"
            "-- then DATABASE_PLAN_URL (or database_plan_url in the target) = "
            "postgresql://dbpulse_plan:...@host/db")


# One read of everything the decision needs, about the authenticated login (session_user), never
# about current_user, which code can change.
_CHECK = """
WITH login AS (SELECT * FROM pg_roles WHERE rolname = session_user),
     stmt AS (SELECT * FROM pg_roles WHERE oid = %(run_as)s)
SELECT login.rolname, stmt.rolname, coalesce(stmt.rolsuper, false), login.rolsuper,
       ARRAY(SELECT r FROM unnest(%(file_roles)s::text[]) r
             WHERE pg_has_role(login.oid, r, 'MEMBER')),
       ARRAY(SELECT a FROM (VALUES ('CREATEROLE', login.rolcreaterole, stmt.rolcreaterole),
                                   ('CREATEDB', login.rolcreatedb, stmt.rolcreatedb),
                                   ('BYPASSRLS', login.rolbypassrls, stmt.rolbypassrls),
                                   ('REPLICATION', login.rolreplication, stmt.rolreplication))
                    v(a, has, allowed) WHERE has AND NOT coalesce(allowed, false)),
       ARRAY(SELECT m.rolname FROM pg_roles m
             WHERE m.oid <> login.oid AND pg_has_role(login.oid, m.oid, 'MEMBER')
               AND (m.rolsuper OR stmt.oid IS NULL
                    OR NOT pg_has_role(stmt.oid, m.oid, 'MEMBER'))
             ORDER BY 1),
       login.oid = stmt.oid OR coalesce(pg_has_role(login.oid, stmt.oid, 'MEMBER'), false),
       login.oid <> coalesce(stmt.oid, 0) AND (
           EXISTS (SELECT FROM pg_class WHERE relowner = login.oid)
           OR EXISTS (SELECT FROM pg_namespace WHERE nspowner = login.oid)
           OR EXISTS (SELECT FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = login.oid)
           OR EXISTS (SELECT FROM pg_attribute t, aclexplode(t.attacl) a
                      WHERE a.grantee = login.oid))
FROM login LEFT JOIN stmt ON true
"""


def check(conn: psycopg.Connection, run_as: int) -> str | None:
    """The role to take inside the plan's transaction (None: the login is the statement's own
    role), or PlanRefused with the reason and the setup that would allow it."""
    row = conn.execute(_CHECK, {"run_as": run_as, "file_roles": list(SERVER_FILE_ROLES)}).fetchone()
    (login, role, role_is_super, login_is_super, file_roles, attributes, extra_roles,
     may_take, has_own_rights) = row
    if role is None:
        raise PlanRefused(f"The role that ran this statement (oid {run_as}) no longer exists: "
                          "DB Pulse plans a statement only with that role's rights.")
    if role_is_super:
        raise PlanRefused(f"This statement was run by the superuser {role}: DB Pulse never plans "
                          "or runs a statement with superuser rights, so it is refused.")
    problems = []
    if login_is_super:
        problems.append("it is a superuser")
    if file_roles:
        problems.append("it is a member of " + ", ".join(file_roles))
    if attributes:
        problems.append(f"it has {', '.join(attributes)}, which {role} has not")
    if extra_roles:
        problems.append(f"it may take roles {role} is not in: " + ", ".join(extra_roles))
    if has_own_rights:
        problems.append("it owns tables or schemas, or holds table rights of its own")
    if problems:
        raise PlanRefused(f"Refused: the plan login {login} has more rights than {role}, the role "
                          f"that ran this statement ({'; '.join(problems)}). A statement's code "
                          "can return to the login's rights, so plans run only on a login with "
                          f"no more rights than that role. Set up a plan login:\n{setup_sql(role)}")
    if not may_take:
        raise PlanRefused(f"Refused: the plan login {login} may not act as {role}, the role that "
                          f"ran this statement. Grant it: GRANT {quote_ident(role)} TO "
                          f"{quote_ident(login)};")
    return None if login == role else role


@contextmanager
def connect(target: Target, settings: Settings, run_as: int) -> Iterator[tuple]:
    """(plan connection, the role to take or None) for a statement run by role oid `run_as`,
    after the check; PlanRefused when the target has no plan login or it fails the check."""
    if not target.plan_url:
        raise PlanRefused("Refused: this target has no plan login. DB Pulse plans and runs a "
                          "statement it did not write only on a login with no more rights than "
                          "the role that ran it, never on the monitoring or admin login. Set "
                          "one up:\n" + setup_sql("<the application's role>"))
    conn = open_plan(target.plan_url, settings)
    try:
        yield conn, check(conn, run_as)
    except psycopg.Error as exc:
        raise describe_error(exc, target.plan_url) from exc
    finally:
        conn.close()


def take_role(conn: psycopg.Connection, role: str | None, timeout_ms: int) -> None:
    """Inside the plan's transaction: the statement's role and the time limit. This SET ROLE
    is not the boundary, only what gives a NOINHERIT plan login the statement role's table
    rights (and its functions that role as current_user): code that leaves it with RESET ROLE
    lands on the login check() vetted, which has no more rights than that role."""
    if role:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))

"""The logins of the deployment DB Pulse is for, on the demo: the application's own role (the
workload runs as it), DB Pulse's monitoring login with pg_monitor and nothing else, and its plan
login (granted the application's role, NOINHERIT, nothing of its own), its read-only probe
login (SELECT on the application's tables, for the latency probes), beside the admin login
(the server's superuser) that DBA actions use. Roles belong to the server; the grants are made
in the demo database, idempotently, after its tables exist."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import conninfo, sql

from demo.stack import DEMO_PASSWORD

APP_ROLE = "salesflow_app"
MONITOR_ROLE = "dbpulse_monitor"
PLAN_ROLE = "dbpulse_plan"
# the latency probes' login: reads the application's tables, writes nothing (read-only by
# default; the probes also run in a READ ONLY transaction)
PROBE_ROLE = "dbpulse_probe"


@dataclass(frozen=True)
class Logins:
    admin_url: str
    monitor_url: str
    app_url: str
    plan_url: str
    probe_url: str

    def environment(self) -> dict[str, str]:
        """The target as DB Pulse reads it from the environment."""
        return {"DATABASE_URL": self.monitor_url, "DATABASE_ADMIN_URL": self.admin_url,
                "DATABASE_PLAN_URL": self.plan_url, "DATABASE_PROBE_URL": self.probe_url}


def _url(admin_url: str, role: str, password: str) -> str:
    return conninfo.make_conninfo(**{**conninfo.conninfo_to_dict(admin_url), "user": role,
                                     "password": password})


_GRANTS = """
    GRANT pg_monitor TO {monitor};
    GRANT {app} TO {plan};
    GRANT CONNECT ON DATABASE {db} TO {monitor}, {app}, {plan}, {probe};
    GRANT USAGE ON SCHEMA public TO {probe};
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO {probe};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {probe};
    ALTER ROLE {probe} SET default_transaction_read_only = on;
    GRANT USAGE ON SCHEMA public TO {app};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app};
"""


def ensure(admin_url: str, password: str = DEMO_PASSWORD) -> Logins:
    """Create the four logins when missing and grant what each needs in admin_url's database."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role, options in ((APP_ROLE, ""), (MONITOR_ROLE, ""), (PLAN_ROLE, " NOINHERIT"),
                              (PROBE_ROLE, "")):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN" + options + " PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)))
        if conn.execute("SELECT to_regnamespace('extensions') IS NOT NULL").fetchone()[0]:
            # pg_stat_statements in a schema of its own, as on Supabase (the README's recipe)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA extensions TO {}").format(
                sql.Identifier(MONITOR_ROLE)))
        conn.execute(sql.SQL(_GRANTS).format(
            monitor=sql.Identifier(MONITOR_ROLE), app=sql.Identifier(APP_ROLE),
            plan=sql.Identifier(PLAN_ROLE), probe=sql.Identifier(PROBE_ROLE),
            db=sql.Identifier(conn.info.dbname)))
    return Logins(admin_url=admin_url, monitor_url=_url(admin_url, MONITOR_ROLE, password),
                  app_url=_url(admin_url, APP_ROLE, password),
                  plan_url=_url(admin_url, PLAN_ROLE, password),
                  probe_url=_url(admin_url, PROBE_ROLE, password))

"""PgBouncer (Debian's) in front of the suite's primary, read through its console by the
pg_monitor-only login as a stats user: clients served and waiting, the pool's utilisation
against the plan's 70 %, each figure the ground truth the test holds open itself."""

from __future__ import annotations

import os

import psycopg
import pytest

from demo import pooler
from demo.stack import DEMO_PASSWORD, free_port
from foundation.config import Settings
from reads import pgbouncer
from tests.conftest import TEST_DIR


@pytest.fixture(scope="module")
def bouncer(servers, logins):
    if pooler.binary() is None:
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is missing; .ci/run should have installed it")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    port = psycopg.conninfo.conninfo_to_dict(servers[0])["port"]
    found = pooler.PgBouncer(TEST_DIR / "test-pgbouncer", free_port(), int(port),
                             {"salesflow_app": DEMO_PASSWORD, "dbpulse_monitor": DEMO_PASSWORD,
                              "postgres": DEMO_PASSWORD}, ("dbpulse_monitor",), pool_size=4)
    found.start()
    yield found
    found.stop()


def test_a_full_pool_is_measured_and_judged_against_the_plan(bouncer, database_url):
    database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    console = bouncer.url("dbpulse_monitor", "pgbouncer")
    app = bouncer.url("salesflow_app", database)
    held = [psycopg.connect(app, prepare_threshold=None) for _ in range(3)]
    try:
        for conn in held:  # each holds a server connection: its transaction stays open
            conn.execute("SELECT 1")
        state = pgbouncer.read(console, Settings())
        row = state.pools[state.pools["database"] == database].iloc[0]
        assert (row["cl_active"], row["in_use"], row["pool_size"]) == (3, 3, 4)
        assert row["utilisation"] == 0.75 and state.state() == "amber"
        assert state.waiting_clients == 0
    finally:
        for conn in held:
            conn.close()
    state = pgbouncer.read(console, Settings())
    row = state.pools[state.pools["database"] == database].iloc[0]
    assert row["in_use"] == 0 and state.state() == "green"


def test_a_login_that_is_no_stats_user_is_told_what_to_set(bouncer):
    from foundation.connections import DatabaseProblem

    with pytest.raises(DatabaseProblem) as refused:
        pgbouncer.read(bouncer.url("salesflow_app", "pgbouncer"), Settings())
    assert refused.value.kind == "privilege" and "stats_users" in refused.value.hint


def test_the_activity_page_shows_the_pools(bouncer, production_env):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    production_env.setenv("PGBOUNCER_URL", bouncer.url("dbpulse_monitor", "pgbouncer"))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/activity.py").run()
    assert not at.exception, at.exception
    assert {"Fullest pool", "Clients waiting"} <= {m.label for m in at.metric}
    assert any("pool_size" in d.value.columns for d in at.dataframe)

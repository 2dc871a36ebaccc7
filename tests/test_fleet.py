"""Several targets side by side: a healthy one, one with a red finding, one that is down; read
concurrently, the down one shown as down without delaying the others."""

import json

import psycopg

from foundation.config import Settings, Target
from operations import fleet
from tests.conftest import run_cli


def _targets(database_url, scratch_database, closed_port):
    return [Target("demo", database_url, database_url),
            Target("broken", scratch_database, scratch_database),
            Target("down", f"postgresql://postgres@127.0.0.1:{closed_port}/x",
                   f"postgresql://postgres@127.0.0.1:{closed_port}/x")]


def _plant_invalid_index(url):
    """An INVALID index (a failed concurrent build): a red finding."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1), (1)")
        try:
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id)")
        except psycopg.errors.UniqueViolation:
            pass


def test_fleet_worst_first_with_a_down_target(database_url, scratch_database, closed_port):
    _plant_invalid_index(scratch_database)
    settings = Settings(connect_timeout_s=3)
    reports = fleet.fleet_reports(_targets(database_url, scratch_database, closed_port),
                                  settings, time_limit_s=20)
    assert [r["target"] for r in reports] == ["down", "broken", "demo"]  # worst first
    assert [r["status"] for r in reports] == ["down", "red", "amber"]
    broken = {f["check"]: f for f in reports[1]["findings"]}
    assert broken["invalid_indexes"]["objects"] == ["public.t_id_key"]
    rows = {r["target"]: r for r in fleet.summary_rows(reports)}
    assert "Invalid indexes (1)" in rows["broken"]["worst"]
    assert rows["down"]["buffer_hit_rate"] is None and rows["down"]["postgres"] == "unreachable"
    assert "Cannot connect" in rows["down"]["down_reason"]  # shown in full under the grid
    assert 0 < rows["demo"]["buffer_hit_rate"] <= 1


def test_a_hung_target_is_down_at_the_time_limit(database_url):
    """A target whose server accepts the connection and never answers (a listening socket
    nobody serves) is down at the limit; the others are there."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    port = silent.getsockname()[1]
    try:
        hung = Target("hung", f"postgresql://postgres@127.0.0.1:{port}/x",
                      f"postgresql://postgres@127.0.0.1:{port}/x")
        # the connect timeout (30 s) is far past the limit: the limit, not it, ends the wait
        reports = fleet.fleet_reports([Target("demo", database_url, database_url), hung],
                                      Settings(connect_timeout_s=30), time_limit_s=3)
    finally:
        silent.close()
    by_name = {r["target"]: r for r in reports}
    assert by_name["hung"]["status"] == "down"
    assert by_name["hung"]["postgres"]["error"] == "no answer within 3 s"
    assert by_name["demo"]["status"] in ("green", "amber")


def test_a_target_waiting_its_turn_is_never_called_down(database_url):
    """More targets than readers: the limit counts from each target's own read, so twenty
    targets read one at a time (longer in all than the limit) all answer, and a hung one
    gives its place to the next at the limit."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    hung_url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
    targets = [Target("hung", hung_url, hung_url)] + [
        Target(f"demo_{n:02d}", database_url, database_url) for n in range(20)]
    try:
        reports = fleet.fleet_reports(targets, Settings(connect_timeout_s=30), time_limit_s=2,
                                      workers=1)
    finally:
        silent.close()
    statuses = {r["target"]: r["status"] for r in reports}
    assert statuses.pop("hung") == "down"
    assert len(statuses) == 20 and set(statuses.values()) <= {"green", "amber"}
    assert all(r["seconds"] is not None for r in reports if r["target"] != "hung")


def test_cli_check_all_targets(database_url, scratch_database, closed_port, tmp_path):
    _plant_invalid_index(scratch_database)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[targets.demo]\ndatabase_url = "{database_url}"\n'
                       f'[targets.broken]\ndatabase_url = "{scratch_database}"\n'
                       f'[targets.down]\ndatabase_url = '
                       f'"postgresql://postgres@127.0.0.1:{closed_port}/x"\n')
    env = {"DBPULSE_SECRETS_FILE": str(secrets), "DATABASE_URL": ""}
    text = run_cli("check", "--all-targets", env=env)
    assert text.returncode == 1  # a target is red, one is down
    lines = text.stdout.splitlines()
    assert lines[0].startswith("down") and "DOWN" in lines[0]
    assert lines[1].startswith("broken") and "RED" in lines[1] and "Invalid indexes" in lines[1]
    assert lines[2].startswith("demo")
    as_json = json.loads(run_cli("check", "--all-targets", "--json", env=env).stdout)
    assert [r["target"] for r in as_json] == ["down", "broken", "demo"]


def test_twenty_targets_in_the_sidebar_and_on_the_fleet_page(database_url, closed_port,
                                                             monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    secrets = tmp_path / "secrets.toml"
    secrets.write_text("".join(f'[targets.t{n:02d}]\ndatabase_url = "{database_url}"\n'
                               for n in range(19))
                       + f'[targets.t19]\ndatabase_url = '
                         f'"postgresql://postgres@127.0.0.1:{closed_port}/x"\n')
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=90).run()
    choice = next(s for s in at.sidebar.selectbox if s.label == "Target")
    assert len(choice.options) == 20
    choice.select("t07").run()
    assert not at.exception
    assert any("Target **t07**" in c.value for c in at.caption)
    at.switch_page("views/fleet.py").run()
    assert not at.exception
    rows = next(d.value for d in at.dataframe if "topology" in d.value.columns)
    assert len(rows) == 20 and rows.iloc[0]["target"] == "t19"  # the down one first
    assert rows.iloc[0]["status"] == "down" and set(rows["status"][1:]) <= {"amber", "green"}
    # why it is down, in full under the grid
    assert any("t19** — Down: Cannot connect" in m.value for m in at.markdown)
    st.cache_data.clear()


def test_the_fleet_shows_what_the_agent_measured_and_reads_only_the_rest(
        database_url, scratch_database, closed_port, monkeypatch, tmp_path):
    """With an agent's address (agent_url) the Fleet shows the figures of its last cycle for
    the targets it watches, as of when it measured them, and reads the others itself: ground
    truth changed after the agent's cycle shows only where a target is read now."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from agent.metrics import serve
    from agent.runner import Agent
    from demo.stack import free_port
    from operations import alerts
    from tests.conftest import PROJECT_ROOT

    demo, broken, down = _targets(database_url, scratch_database, closed_port)
    agent = Agent([broken, down], Settings(connect_timeout_s=3), alerts.Alerter([]),
                  log=lambda line: None)
    agent.cycle([broken, down])  # broken is still healthy when the agent measures it
    agent.close()
    measured_at = agent.last.targets["broken"].report["measured_at"]
    _plant_invalid_index(scratch_database)
    port = free_port()
    server = serve(agent.last, port)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[settings]\nagent_url = "http://127.0.0.1:{port}"\n'
                       + "".join(f'[targets.{t.name}]\ndatabase_url = "{t.database_url}"\n'
                                 for t in (demo, broken, down)))
    env = {"DBPULSE_SECRETS_FILE": str(secrets), "DATABASE_URL": ""}
    try:
        text = run_cli("check", "--all-targets", env=env)
        live = run_cli("check", "--all-targets", "--live", env=env)
        monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(secrets))
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("REDIS_URL", raising=False)
        st.cache_data.clear()
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=90).run()
        at.switch_page("views/fleet.py").run()
        assert not at.exception
        rows = next(d.value for d in at.dataframe if "topology" in d.value.columns)
        stale = run_cli("check", "--all-targets",
                        env={**env, "DBPULSE_AGENT_MAX_AGE_S": "0"})
    finally:
        server.shutdown()
    gone = run_cli("check", "--all-targets", env=env)
    st.cache_data.clear()
    # the agent's figures: broken had no red finding when measured (grey: no
    # pg_stat_statements there), down was down
    lines = text.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["down", "DOWN"], ["demo", "AMBER"],
                                                    ["broken", "GREY"]]
    assert text.stderr.strip() == "# 2 of 3 as the agent measured them"
    assert "broken" in live.stdout.splitlines()[1] and "RED" in live.stdout.splitlines()[1]
    assert live.stderr == ""
    assert "RED" in stale.stdout and "has no recent figures" in stale.stderr
    assert "RED" in gone.stdout and "did not answer" in gone.stderr
    by_target = rows.set_index("target")
    assert by_target.loc["broken", "status"] == "grey" and by_target.loc["demo", "status"] == \
        "amber" and by_target.loc["down", "status"] == "down"
    assert any("2 of 3 as the agent measured them" in c.value for c in at.caption)
    assert str(measured_at.replace(tzinfo=None))[:16] in str(by_target.loc["broken",
                                                                           "measured_at"])

"""Who may do what: the access policy from the configuration, and every DBA action's ceremony
(operations/actions.perform) against a real database: refusals written with who and why, the
person and the parameters in every row, the CLI honouring the configured role."""

import getpass
import json
import os
import subprocess
import sys
import threading

import psycopg
import pytest

from foundation import access
from foundation.config import ConfigError, Settings, Target
from foundation.connections import DatabaseProblem
from foundation.roles import Actor
from operations import actions, migrations
from tests.conftest import PROJECT_ROOT


def _policy(secrets: dict, role: str = "viewer") -> access.AccessPolicy:
    return access.load_policy(secrets, Settings(role=role))


@pytest.mark.parametrize("secrets, message", [
    ({"access": {"dba": ["ann"]}}, "'ann' is not an e-mail, an @domain"),
    ({"access": {"dba": "ann@example.com", "admins": ["x@example.com"]}}, "unknown keys: admins"),
    ({"access": {"unknown": "dba"}}, "access.unknown must be"),
    ({"access": {"proxy_header": "X-Forwarded-Email"}}, "trusted_proxies is empty"),
    ({"access": {"proxy_header": "X-Email", "trusted_proxies": ["10.0.0.300"]}},
     "'10.0.0.300' is not an IP address"),
    ({"auth": {"client_id": "x"}, "access": {"proxy_header": "X-Email",
                                             "trusted_proxies": ["10.0.0.1"]}}, "keep one"),
    ({"access": {"targets": {"staging": ["ann@example.com"]}}}, "[access.targets.NAME]"),
])
def test_a_malformed_role_map_is_refused_with_what_to_change(secrets, message):
    with pytest.raises(ConfigError) as caught:
        _policy(secrets)
    assert message in str(caught.value)


def test_roles_by_email_domain_group_and_target():
    policy = _policy({"auth": {"client_id": "x"}, "access": {
        "dba": ["Ann@Example.com", "group:db-admins"], "viewer": ["@example.com"],
        "unknown": "refuse",
        "targets": {"staging": {"dba": ["@example.com"]}}}})
    assert policy.mode == "oidc"
    role = lambda name, target="production", groups=(): access.decide_role(  # noqa: E731
        policy, access.Person(name, groups), target)
    assert role("ann@example.com") == "dba"
    assert role("bob@example.com") == "viewer"
    assert role("bob@example.com", "staging") == "dba"         # the target's own lists
    assert role("carl@partner.org", groups=("DB-Admins",)) == "dba"
    with pytest.raises(access.AccessRefused, match="no role list for target production"):
        role("eve@elsewhere.org")
    assert role("cli:deploy") == "viewer"                      # the configured `role`
    assert access.decide_role(_policy({}, role="dba"), access.Person("cli:deploy"), "x") == "dba"


def test_a_dba_without_sign_in_is_refused_on_a_network_address():
    local_dba, local_viewer = _policy({}, role="dba"), _policy({})
    signed_in = _policy({"auth": {"client_id": "x"}}, role="dba")
    for address in ("0.0.0.0", "192.0.2.10", "", None):
        assert "will not serve DBA actions" in access.start_problem(local_dba, address)
        assert access.start_problem(local_viewer, address) is None
        assert access.start_problem(signed_in, address) is None
    assert access.start_problem(local_dba, "127.0.0.1") is None


def test_proxy_header_is_trusted_only_from_the_named_proxies():
    policy = _policy({"access": {"proxy_header": "X-Forwarded-Email",
                                 "proxy_groups_header": "X-Forwarded-Groups",
                                 "trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}})
    person = access.proxy_person(policy, {"X-Forwarded-Email": "Ann@Example.com",
                                          "X-Forwarded-Groups": "dba, ops"}, None)
    assert person == access.Person("ann@example.com", ("dba", "ops"))
    iap = access.proxy_person(policy, {"x-forwarded-email": "accounts.google.com:bob@x.org"},
                              "10.2.3.4")
    assert iap.name == "bob@x.org"
    with pytest.raises(access.AccessRefused, match="192.0.2.1, which is not a trusted proxy"):
        access.proxy_person(policy, {"X-Forwarded-Email": "ann@example.com"}, "192.0.2.1")
    with pytest.raises(access.AccessRefused, match="carries no X-Forwarded-Email header"):
        access.proxy_person(policy, {}, None)
    with pytest.raises(access.AccessRefused, match="no e-mail address"):
        access.proxy_person(policy, {"X-Forwarded-Email": "not-an-address"}, None)


# -- the ceremony, on a real database ----------------------------------------------------------
@pytest.fixture
def view_db(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE deals (id int PRIMARY KEY, amount int);
            INSERT INTO deals SELECT g, g FROM generate_series(1, 100) g;
            CREATE MATERIALIZED VIEW deal_totals AS SELECT id, amount FROM deals;
            CREATE UNIQUE INDEX ON deal_totals (id);""")
    return scratch_database


def _who(url: str, person: str, role: str, **settings) -> Actor:
    return Actor(person, role, Target("staging", url, url), Settings(role=role, **settings))


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT actor, role, action, target, object_name, outcome, detail, "
                            "parameters FROM dbpulse.audit_log WHERE action <> 'install_schema' "
                            "ORDER BY id").fetchall()


def _refreshes(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM dbpulse.matview_refresh_log").fetchone()[0]


def test_each_person_is_in_their_rows_and_a_viewer_is_refused_and_logged(view_db):
    ann, bob = _who(view_db, "ann@example.com", "dba"), _who(view_db, "bob@example.com", "viewer")
    result = actions.refresh_view(ann, "public", "deal_totals")
    assert result.concurrently
    with pytest.raises(DatabaseProblem) as refused:
        actions.refresh_view(bob, "public", "deal_totals")
    assert refused.value.kind == "refused"
    assert "bob@example.com is a viewer on staging" in refused.value.message
    assert _refreshes(view_db) == 1                               # nothing done for bob
    ok, denied = _rows(view_db)
    assert ok[:6] == ("ann@example.com", "dba", "refresh_matview", "staging",
                      "public.deal_totals", "ok")
    assert ok[7] == {"allow_blocking": False}
    assert denied[:6] == ("bob@example.com", "viewer", "refresh_matview", "staging",
                          "public.deal_totals", "refused")
    assert "needs the DBA role" in denied[6]


def test_a_viewer_on_a_fresh_target_installs_nothing_and_is_told(scratch_database):
    bob = _who(scratch_database, "bob@example.com", "viewer")
    with pytest.raises(DatabaseProblem, match="Not recorded: DB Pulse's schema is not installed"):
        actions.migrate(bob, "apply", "0001", progress=lambda m: None)
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT to_regnamespace('dbpulse')").fetchone()[0] is None


def test_a_refresh_already_running_and_a_run_in_progress_are_refusals_in_the_log(view_db):
    from reads.matviews import REFRESH_LOCK_CLASS

    ann = _who(view_db, "ann@example.com", "dba")
    actions.install_schema(ann)
    with psycopg.connect(view_db, autocommit=True) as holder:
        oid = holder.execute("SELECT 'deal_totals'::regclass::oid::int").fetchone()[0]
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (REFRESH_LOCK_CLASS, oid))
        holder.execute("SELECT pg_advisory_lock(%s)", (migrations.RUN_LOCK_KEY,))
        with pytest.raises(DatabaseProblem, match="already running") as refresh:
            actions.refresh_view(ann, "public", "deal_totals")
        with pytest.raises(DatabaseProblem, match="run is in progress") as run:
            actions.migrate(ann, "apply", "0001", progress=lambda m: None)
    assert refresh.value.kind == run.value.kind == "refused"
    rows = _rows(view_db)
    assert [(r[2], r[5]) for r in rows] == [("refresh_matview", "refused"),
                                            ("migrate_apply", "refused")]
    assert "already running" in rows[0][6] and "in progress" in rows[1][6]
    assert rows[1][7] == {"up_to": "0001"}


def test_a_blocking_refresh_needs_its_confirmation_and_the_refusal_is_logged(view_db):
    ann = _who(view_db, "ann@example.com", "dba")
    with psycopg.connect(view_db, autocommit=True) as conn:
        conn.execute("DROP INDEX deal_totals_id_idx")
    with pytest.raises(DatabaseProblem) as refused:
        actions.refresh_view(ann, "public", "deal_totals")
    assert refused.value.kind == "not_confirmed"
    assert actions.refresh_view(ann, "public", "deal_totals", allow_blocking=True).concurrently \
        is False
    assert [(r[5], r[7]) for r in _rows(view_db)] == [
        ("refused", {"allow_blocking": False}), ("ok", {"allow_blocking": True})]


def test_snapshots_and_pruning_are_audited(database_url):
    ann = Actor("ann@example.com", "dba", Target("demo", database_url, database_url),
                Settings(role="dba", history_retention_days=30))
    first = actions.take_snapshot(ann)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE dbpulse.snapshots SET taken_at = taken_at - interval '31 days' "
                     "WHERE id = %s", (first.snapshot_id,))
    second = actions.take_snapshot(ann)
    assert second.pruned >= 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("""
            SELECT action, outcome, detail FROM dbpulse.audit_log
            WHERE actor = 'ann@example.com' AND action IN ('snapshot', 'prune_history')
            ORDER BY id""").fetchall()
    assert [r[:2] for r in rows[-3:]] == [("snapshot", "ok"), ("prune_history", "ok"),
                                          ("snapshot", "ok")]
    assert f"snapshot {second.snapshot_id}" in rows[-1][2]
    assert rows[-2][2].startswith(f"pruned {second.pruned} snapshots older than 30 days")


def _cli(url, role, *args):
    env = {**os.environ, "DATABASE_URL": url, "DBPULSE_ROLE": role,
           "DBPULSE_SECRETS_FILE": "/nonexistent"}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_honours_the_configured_role_and_names_its_user(view_db):
    actions.install_schema(_who(view_db, "ann@example.com", "dba"))
    viewer = _cli(view_db, "viewer", "refresh", "public.deal_totals")
    assert viewer.returncode == 1 and "needs the DBA role" in viewer.stderr
    assert _refreshes(view_db) == 0
    dba = _cli(view_db, "dba", "refresh", "public.deal_totals")
    assert dba.returncode == 0, dba.stderr
    me = f"cli:{getpass.getuser()}"
    name = psycopg.conninfo.conninfo_to_dict(view_db)["dbname"]  # the target: its database
    assert [(r[0], r[1], r[3], r[5]) for r in _rows(view_db)] == [
        (me, "viewer", name, "refused"), (me, "dba", name, "ok")]


def test_no_password_reaches_an_audit_row(view_db):
    ann = _who(view_db, "ann@example.com", "dba")
    with pytest.raises(DatabaseProblem):
        actions.explain_analyze(ann, "SELECT 1 FROM deals WHERE amount = $1 "
                                "/* postgresql://u:Hunter2pw@db/x */", ["x"], 10)
    with psycopg.connect(view_db) as conn:
        text = json.dumps(conn.execute("SELECT * FROM dbpulse.audit_log").fetchall(), default=str)
    assert "explain_analyze" in text and "Hunter2pw" not in text


def test_two_people_at_once_are_told_apart(view_db):
    """Both act in parallel threads on one target: each row carries its own person and role."""
    people = [_who(view_db, f"p{i}@example.com", "dba" if i % 2 else "viewer") for i in range(6)]
    actions.install_schema(people[1])
    done = []

    def act(who):
        try:
            actions.refresh_stale(who)
            done.append(who.person)
        except DatabaseProblem:
            done.append(f"refused {who.person}")
    threads = [threading.Thread(target=act, args=(who,)) for who in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = {(r[0], r[1], r[5]) for r in _rows(view_db)}
    assert rows == {(w.person, w.role, "ok" if w.is_dba else "refused") for w in people}
    assert sorted(done) == sorted(w.person if w.is_dba else f"refused {w.person}"
                                  for w in people)

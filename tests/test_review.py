"""The weekly review and its exports, from real snapshot histories: one recorded here with a
statement that regressed and one that improved, and the demo's synthetic two weeks."""

import html.parser
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg
import pytest

import cli
from foundation.config import Settings
from foundation.connections import admin_connection, monitoring_connection
from foundation.markup import shown
from operations import actions, dbpulse_schema, history, review, snapshots
from reports import weekly
from tests.conftest import app_on, as_actor, read_data

REGRESSING = "SELECT pg_sleep(%s) AS review_regression_probe"
IMPROVING = "SELECT 1 AS review_improvement_probe, pg_sleep(%s)"  # aliases alone share a queryid


def _snap(url, settings, source):
    with admin_connection(url, settings) as hist, monitoring_connection(url, settings) as mon:
        dbpulse_schema.install(hist, as_actor(settings))
        return snapshots.take(mon, hist, as_actor(settings), source=source, redis_urls=())


@pytest.fixture(scope="module")
def recorded_review(database_url, dba_settings_module):
    """Three real snapshots: in the first interval the regressing probe sleeps 1 ms and the
    improving one 50 ms; in the second the other way round. On a busy host a 1 ms sleep takes
    up to about 4 ms, so the contrast is wide enough to stay over the asserted sixfold."""
    settings = dba_settings_module
    source = f"review-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        read_data(conn, "message_events")  # in shared buffers before the first period
    first = _snap(database_url, settings, source)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(12):
            conn.execute(REGRESSING, (0.001,))
            conn.execute(IMPROVING, (0.05,))
        read_data(conn, "message_events")
    second = _snap(database_url, settings, source)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(12):
            conn.execute(REGRESSING, (0.05,))
            conn.execute(IMPROVING, (0.001,))
        read_data(conn, "message_events")
    third = _snap(database_url, settings, source)
    return _review_between(database_url, settings, source, first, second, third)


def _review_between(url, settings, source, first, second, third):
    """The review of the period second..third against first..second, with the watched
    database's migration and refresh marks."""
    previous = history.Period(first.taken_at, second.taken_at)
    current = history.Period(second.taken_at, third.taken_at)
    with monitoring_connection(url, settings) as conn:
        return review.build_review(conn, source, previous, current, settings,
                                   history.target_events(conn, review.span(previous, current)))


@pytest.fixture(scope="module")
def dba_settings_module():
    from foundation.config import Settings
    return Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3)


def test_review_finds_the_recorded_regression_and_improvement(recorded_review):
    regressed = recorded_review.regressed
    improved = recorded_review.improved
    assert "review_regression_probe" in regressed.iloc[0]["query"]
    assert regressed.iloc[0]["mean_change"] > 5          # 1 ms -> 50 ms
    assert "review_improvement_probe" in improved.iloc[0]["query"]
    assert not any("review_improvement_probe" in q for q in regressed["query"])
    assert "Biggest regression" in recorded_review.headline
    assert recorded_review.synthetic is False


class _ExternalResources(html.parser.HTMLParser):
    """Every tag attribute that would make a browser fetch something from elsewhere."""

    def __init__(self):
        super().__init__()
        self.external = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and tag in ("script", "link", "img", "iframe",
                                                              "source", "video", "audio"):
                if "://" in value or value.startswith("//"):
                    self.external.append((tag, value))


def test_exports_carry_the_regression_and_need_no_network(recorded_review, dba_settings_module):
    markdown = weekly.render_markdown(recorded_review, dba_settings_module)
    page = weekly.render_html(recorded_review, dba_settings_module)
    regressed_md = markdown.split("## Regressed most")[1].split("## ")[0]
    assert "review_regression_probe" in regressed_md
    assert "review_regression_probe" in page.split("Regressed most")[1]
    parser = _ExternalResources()
    parser.feed(page)
    assert parser.external == []
    assert "@import" not in page
    assert "plotly.js v" in page  # the library is inline, once
    assert page.count("plotly.js v") == 1
    assert page.count("class=\"plotly-graph-div\"") == 3


def test_both_periods_read_at_once_equal_them_read_one_after_the_other(
        synthetic_history, database_url, dba_settings_module):
    with monitoring_connection(database_url, dba_settings_module) as conn, \
            monitoring_connection(database_url, dba_settings_module) as spare:
        latest = conn.execute("SELECT max(taken_at) FROM dbpulse.snapshots WHERE source = %s",
                              (synthetic_history,)).fetchone()[0]
        previous, current = history.weekly_periods(latest + timedelta(minutes=1))
        apart = review.statement_periods(conn, None, synthetic_history, previous, current)
        together = review.statement_periods(conn, spare, synthetic_history, previous, current)
    assert len(apart[0]) > 10 and len(apart[1]) > 10
    assert apart[0].equals(together[0]) and apart[1].equals(together[1])
    assert not apart[0].equals(apart[1])  # two different weeks, each in its place


def test_demo_history_shows_phase_1_as_the_biggest_improvement(synthetic_history, database_url,
                                                                dba_settings_module):
    with monitoring_connection(database_url, dba_settings_module) as conn:
        latest = conn.execute("SELECT max(taken_at) FROM dbpulse.snapshots WHERE source = %s",
                              (synthetic_history,)).fetchone()[0]
        previous, current = history.weekly_periods(latest + timedelta(minutes=1))
        result = review.build_review(conn, synthetic_history, previous, current,
                                     dba_settings_module,
                                     history.target_events(conn, review.span(previous, current)))
    assert result.synthetic
    assert result.improved.iloc[0]["label"] == "Q1 message events list"
    assert "phase1" in result.headline
    assert "idx_message_events_user_id" in set(result.newly_unused_indexes["index_name"])
    assert "Q5 unified inbox" in set(result.regressed["label"])
    kpis = {k.name: k for k in result.kpis}
    assert kpis["Q1 message events list, mean"].trend == "better"
    redis = result.redis_trend
    assert (redis["keyspace_hits"] >= 0).all() and redis["hit_rate"].dropna().between(0, 1).all()
    markdown = weekly.render_markdown(result, dba_settings_module)
    assert "Synthetic demo data" in markdown
    assert "Biggest improvement: Q1 message events list" in shown(markdown)


def test_cli_report_writes_html_and_markdown(synthetic_history, database_url, monkeypatch,
                                             tmp_path, capsys):
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    for suffix in ("html", "md"):
        out = tmp_path / f"review.{suffix}"
        assert cli.main(["report", "--out", str(out)]) == 0
        assert "Q1 message events list" in out.read_text()
    assert cli.main(["report", "--out", str(tmp_path / "r.pdf")]) == 2
    assert cli.main(["report", "--from", "2020-01-01", "--to", "2020-01-08",
                     "--out", str(tmp_path / "old.md")]) == 1
    assert "No snapshots" in capsys.readouterr().err


def test_cli_snapshot(database_url, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DBPULSE_ROLE", "viewer")
    assert cli.main(["snapshot"]) == 2                       # the CLI honours the role
    assert "Taking a snapshot needs the DBA role" in capsys.readouterr().err
    monkeypatch.setenv("DBPULSE_ROLE", "dba")
    assert cli.main(["snapshot"]) == 0
    assert "statements" in capsys.readouterr().out
    monkeypatch.setenv("HISTORY_DATABASE_URL", "postgresql://x:y@127.0.0.1:1/none")
    assert cli.main(["snapshot"]) == 2
    assert "Cannot connect to the database" in capsys.readouterr().err


def test_review_page(synthetic_history, database_url, redis_url, monkeypatch, tmp_path):
    at = app_on(monkeypatch, tmp_path, database_url, redis_url)
    at.switch_page("views/review.py").run()
    assert not at.exception, at.exception
    assert any("Synthetic demo data" in w.value for w in at.warning)
    assert any("Biggest improvement: Q1 message events list" in shown(i.value) for i in at.info)
    assert {"Redis hit rate (keyspace)", "Buffer cache hit rate"} <= {
        shown(m.label) for m in at.metric}
    assert len(at.get("plotly_chart")) == 3
    snapshot = next(b for b in at.sidebar.button if b.label == "Take a snapshot now")
    snapshot.click().run()
    assert any("Snapshot" in s.value and "stored" in s.value for s in at.success)


def test_review_page_for_a_period_without_snapshots(synthetic_history, database_url, redis_url,
                                                   monkeypatch, tmp_path):
    from datetime import date

    at = app_on(monkeypatch, tmp_path, database_url, redis_url, role="viewer")
    at.switch_page("views/review.py").run()
    [snapshot] = [b for b in at.sidebar.button if b.label == "Take a snapshot now"]
    assert snapshot.disabled and "needs the DBA role" in snapshot.help  # a viewer's
    next(s for s in at.selectbox if s.label == "Period").select("Ending on a day").run()
    at.date_input[0].set_value(date(2021, 1, 1)).run()
    assert not at.exception
    assert any("No snapshots" in e.value for e in at.error)


def test_review_page_calendar_week(synthetic_history, database_url, redis_url, monkeypatch,
                                   tmp_path):
    """The last calendar week runs Monday to Monday and is compared with the week before."""
    at = app_on(monkeypatch, tmp_path, database_url, redis_url, role="viewer")
    at.switch_page("views/review.py").run()
    next(s for s in at.selectbox if s.label == "Period").select("Last calendar week").run()
    assert not at.exception
    period = history.calendar_week(datetime.now(timezone.utc), 1)
    shown = " ".join(c.value for c in at.caption)
    assert f"This period: {period.label()} UTC" in shown
    assert period.start.weekday() == 0 and (period.end - period.start).days == 7


def test_slow_queries_interval_mode(synthetic_history, database_url, redis_url, monkeypatch,
                                    tmp_path):
    at = app_on(monkeypatch, tmp_path, database_url, redis_url)
    at.switch_page("views/slow_queries.py").run()
    at.get("button_group")[0].set_value("between snapshots").run()
    assert not at.exception, at.exception
    at.radio[0].set_value("last week").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Between the snapshots of") for c in at.caption)
    assert any("synthetic demo history" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert (table["calls"].astype(float) > 0).all()
    assert table["query"].str.contains("FROM message_events").any()
    at.radio[0].set_value("two snapshots").run()
    assert not at.exception, at.exception
    assert len(at.selectbox) >= 2


def test_an_index_built_during_the_period_is_not_counted_as_unused(scratch_database,
                                                                   dba_settings_module):
    settings = dba_settings_module
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, a int, b int); "
                     "CREATE INDEX t_a ON t (a); "
                     "INSERT INTO t SELECT i, i, i FROM generate_series(1, 1000) i")
    first = _snap(scratch_database, settings, "new-index")
    second = _snap(scratch_database, settings, "new-index")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE INDEX t_b ON t (b)")  # built now: no scans yet, proves nothing
    third = _snap(scratch_database, settings, "new-index")
    result = _review_between(scratch_database, settings, "new-index", first, second, third)
    kpis = {k.name: k for k in result.kpis}
    not_scanned = kpis[review.NOT_SCANNED_LABEL]
    assert (not_scanned.previous, not_scanned.current) == (1, 1)  # t_a


def test_a_previous_period_without_snapshots_gives_a_review_not_a_crash(scratch_database,
                                                                       dba_settings_module):
    settings = dba_settings_module
    first = _snap(scratch_database, settings, "fresh-history")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        for _ in range(12):
            conn.execute(REGRESSING, (0.001,))
    second = _snap(scratch_database, settings, "fresh-history")
    current = history.Period(first.taken_at, second.taken_at)
    previous = history.Period(first.taken_at - (second.taken_at - first.taken_at), first.taken_at)
    with monitoring_connection(scratch_database, settings) as conn:
        result = review.build_review(conn, "fresh-history", previous, current, settings, None)
    assert result.improved.empty and result.regressed.empty
    assert any("nothing to compare with" in n for n in result.notes)
    assert "## Regressed most" in weekly.render_markdown(result, settings)


def test_a_view_of_unknown_age_makes_the_oldest_view_unknown(scratch_database,
                                                             dba_settings_module):
    settings = dba_settings_module
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY); INSERT INTO src VALUES (1); "
                     "CREATE MATERIALIZED VIEW known_age AS SELECT id FROM src; "
                     "CREATE UNIQUE INDEX ON known_age (id); "
                     "CREATE MATERIALIZED VIEW unknown_age AS SELECT id FROM src")
    # DB Pulse knows this refresh; nobody knows the other
    actions.refresh_view(as_actor(settings, scratch_database), "public", "known_age")
    first = _snap(scratch_database, settings, "ages")
    second = _snap(scratch_database, settings, "ages")
    third = _snap(scratch_database, settings, "ages")
    result = _review_between(scratch_database, settings, "ages", first, second, third)
    kpi = {k.name: k for k in result.kpis}["Oldest materialized view seen"]
    assert kpi.current is None and kpi.state == "grey"  # not "0 min, green"


def test_the_meeting_gets_next_steps_sample_sizes_and_the_texts(recorded_review,
                                                                dba_settings_module):
    """The regression recorded above (12 calls each side, 1 ms -> 50 ms) is the first thing to
    look at; each table row carries its calls; the text behind a label is there in full."""
    steps = review.next_steps(recorded_review, dba_settings_module)
    regression = next(s for s in steps if s.startswith("Find out why"))
    assert "review_regression_probe" in regression and "over 12 calls" in regression
    texts = {t["label"]: t for t in review.statement_texts(recorded_review)}
    probe = next(t for label, t in texts.items() if "review_regression_probe" in label)
    assert (probe["calls_before"], probe["calls_now"]) == (12, 12)
    assert "pg_sleep" in probe["text"]
    markdown = weekly.render_markdown(recorded_review, dba_settings_module)
    todo = markdown.split("## What to do next")[1].split("## ")[0]
    assert "- Find out why" in todo
    regressed = markdown.split("## Regressed most")[1].split("## ")[0]
    assert "| calls before | calls now |" in regressed and "| 12 | 12 |" in regressed
    page = weekly.render_html(recorded_review, dba_settings_module)
    assert "Statements behind the labels" in page and "`" not in page.split("<h1>")[1].split(
        "<script")[0]  # backticks became <code>, none shows literally


def test_a_command_without_a_plan_is_not_sent_to_its_plan(recorded_review,
                                                         dba_settings_module):
    """pg_stat_statements counts utility commands too: a slow VACUUM has no plan to look at,
    so its next step says when it runs and what it waits for; a slow SELECT keeps its plan."""
    slow = pd.DataFrame({"label": ["VACUUM big", "SELECT big"], "mean_exec_ms": [900.0, 50.0],
                         "calls": [120, 300],
                         "query": ["VACUUM (ANALYZE) big", "SELECT * FROM big WHERE a = $1"]})
    steps = review.next_steps(replace(recorded_review, new_slow=slow), dba_settings_module)
    vacuum = next(s for s in steps if "VACUUM big" in s)
    select = next(s for s in steps if "SELECT big" in s)
    assert vacuum.endswith("a command with no plan: look at when it runs, how often, and what "
                           "it waits for (the Activity page while it runs).")
    assert select.endswith("check its plan and indexes.")


def test_charts_cover_exactly_the_two_periods(recorded_review, dba_settings_module):
    """Refresh marks or the newest snapshot must not stretch a time axis past the review."""
    from reports import charts

    for figure in (charts.statement_trend(recorded_review),
                   charts.redis_trend(recorded_review, dba_settings_module.redis_hit_rate_target),
                   charts.buffer_trend(recorded_review,
                                       dba_settings_module.buffer_cache_hit_threshold)):
        start, end = figure.layout.xaxis.range
        assert (start, end) == (recorded_review.previous.start, recorded_review.current.end)
    # the hit rates run up to 100 % from under their target: noise is not drawn as a cliff
    buffer = charts.buffer_trend(recorded_review, 0.99)
    low, high = buffer.layout.yaxis.range
    assert high == 100 and low < 99 <= min(buffer.data[0].y)
    # the Redis legend names the database reviewed (and the address only among several)
    at = recorded_review.current.start
    rows = pd.DataFrame({"instance": ["redis://cache-a:6379/0", "redis://cache-b:6379/0"],
                         "taken_at": [at, at], "keyspace_hits": [90, 50],
                         "keyspace_misses": [10, 50]})
    one = charts.redis_trend(replace(recorded_review, redis_trend=rows.head(1)), 0.7)
    two = charts.redis_trend(replace(recorded_review, redis_trend=rows), 0.7)
    source = recorded_review.source
    assert [trace.name for trace in one.data if trace.mode == "lines"] == [f"Redis of {source}"]
    assert [(trace.name, list(trace.y)) for trace in two.data if trace.mode == "lines"] == [
        (f"Redis of {source}: cache-a:6379/0", [90.0]),
        (f"Redis of {source}: cache-b:6379/0", [50.0])]
    mean_axis = charts.statement_trend(recorded_review).layout.yaxis
    # 1 ms and 50 ms statements: a linear axis from 0 (log only beyond two decades)
    assert mean_axis.type != "log" and mean_axis.rangemode == "tozero"


def _sleeps(url, seconds: list[float], tag: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for s in seconds:
            conn.execute(f"SELECT pg_sleep(%s) AS {tag}", (s,))


def test_the_slow_call_kpi_bounds_the_true_share_where_the_means_hide_it(scratch_database):
    """100 calls of one statement, 2 of them over the 30 ms limit: its mean (about 1 ms) is
    far under the limit, so an estimate from means said 0 %; the review gives the page's
    bounds from min/mean/max, and the truth (2 %) lies inside them."""
    settings = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3,
                        kpi_slow_ms=30)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    first = _snap(scratch_database, settings, "slow-share")
    _sleeps(scratch_database, [0.0] * 49 + [0.05] + [0.0] * 49 + [0.05], "slow_share_probe")
    second = _snap(scratch_database, settings, "slow-share")
    with monitoring_connection(scratch_database, settings) as conn:
        deltas = history.statement_deltas(conn, "slow-share",
                                          history.Period(first.taken_at, second.taken_at))
    probe = deltas[deltas["query"].str.contains("slow_share_probe")]
    assert int(probe["calls"].iloc[0]) == 100 and float(probe["mean_exec_ms"].iloc[0]) < 30
    assert bool(probe["extremes_cover"].iloc[0])
    kpi = review.slow_calls(probe, settings)
    assert kpi.slow_calls_low <= 2 <= kpi.slow_calls_high <= 5
    result = _review_between(scratch_database, settings, "slow-share", first, first, second)
    shown_kpi = {k.name: k for k in result.kpis}["Calls slower than 0.03 s"]
    low, high = review.low_high(shown_kpi.current)
    everything = review.slow_calls(deltas, settings)
    assert (low, high) == (100 * everything.share_low, 100 * everything.share_high)
    assert low < 100 * 2 / everything.total_calls <= high
    assert "(bounds)" in weekly.kpi_value(shown_kpi, shown_kpi.current)


def test_a_reset_of_one_statement_is_noted_and_its_calls_after_it_counted(scratch_database):
    """5 calls, a snapshot, 7 calls, pg_stat_statements_reset of that statement alone, 9
    calls, a snapshot: the period counts the 9 it can see and says that some went uncounted;
    the footer no longer claims that nothing was reset."""
    settings = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    first = _snap(scratch_database, settings, "lone-reset")
    _sleeps(scratch_database, [0.0] * 5, "lone_reset_probe")
    second = _snap(scratch_database, settings, "lone-reset")
    _sleeps(scratch_database, [0.0] * 7, "lone_reset_probe")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset(0, 0, queryid) FROM pg_stat_statements "
                     "WHERE query LIKE '%lone_reset_probe%'")
    _sleeps(scratch_database, [0.0] * 9, "lone_reset_probe")
    third = _snap(scratch_database, settings, "lone-reset")
    result = _review_between(scratch_database, settings, "lone-reset", first, second, third)
    with monitoring_connection(scratch_database, settings) as conn:
        deltas = history.statement_deltas(conn, "lone-reset",
                                          history.Period(second.taken_at, third.taken_at))
    probe = deltas[deltas["query"].str.contains("lone_reset_probe")]
    assert int(probe["calls"].iloc[0]) == 9 and int(probe["restarts_alone"].iloc[0]) == 1
    assert int(deltas["restarts_alone"].sum()) == 1
    assert [n for n in result.notes if "restarted on their own" in n] == [
        "This period: Counters restarted on their own 1 time in 1 statement (a reset of one "
        "statement, or an eviction): calls between the snapshot before and each restart are "
        "not counted"]
    markdown = weekly.render_markdown(result, settings)
    assert "restarted on their own" in markdown and "no statistics were reset" not in markdown

"""A real browser on a real `streamlit run app.py`: slow queries and indexes, refreshing a view,
applying a migration, the weekly review. (The Overview's live numbers: tests/test_browser_live.py.)

Uses Debian's chromium (.ci/run installs it); Playwright cannot download browsers here."""

import re

import psycopg
import pytest

from foundation import migration_files
from tests.conftest import as_actor, chromium, grid_cells_once, wait_idle


def test_slow_queries_and_indexes_in_chromium(dashboard, logins):
    # some traffic so the slow-query list has rows beyond DB Pulse's own
    with psycopg.connect(logins.app_url) as conn:  # the application's statement: planned as it
        for i in range(20):
            conn.execute("SELECT * FROM leads WHERE status = %s LIMIT 5", (f"s{i}",)).fetchall()

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/slow_queries", wait_until="domcontentloaded")
        page.locator("[data-testid=stMetric]", has_text="Calls slower than").wait_for(
            timeout=60_000)
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=60_000)
        page.get_by_text("Filters").click()
        page.get_by_label("Statement text contains").fill("FROM leads WHERE status")
        page.get_by_label("Statement text contains").press("Enter")
        wait_idle(page)
        page.get_by_label("Role (empty: all roles)").fill("salesflow_app")
        page.get_by_label("Role (empty: all roles)").press("Enter")
        # the chart's axis labels are plain SVG text: the filtered list has arrived
        page.get_by_text("FROM leads WHERE status").first.wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_role("button", name="Show the generic plan").click()
        page.locator("code", has_text="Scan").first.wait_for(timeout=30_000)
        # the deep link went through the router: its sidebar lists every page
        nav = page.locator("[data-testid=stSidebarNav]").inner_text()
        page.goto(f"{dashboard}/indexes", wait_until="domcontentloaded")
        page.get_by_text("DROP INDEX CONCURRENTLY IF EXISTS").first.wait_for(timeout=60_000)
    assert "Slow queries" in nav and "Bloat and vacuum" in nav


@pytest.mark.parametrize("dashboard", ["dba", "viewer"], indirect=True)
def test_matview_refresh_button_by_role(dashboard, database_url):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/matviews", wait_until="domcontentloaded")
        page.locator("[data-testid=stMetric]", has_text="Stale or unknown").wait_for(
            timeout=60_000)
        wait_idle(page)
        # the role the dashboard was started with, as its sidebar states it
        sidebar = " ".join(page.locator("[data-testid=stSidebar]").inner_text().split())
        role = "dba" if "Role: dba" in sidebar else "viewer"
        if role == "viewer":  # shown disabled: a DBA runs it
            assert page.get_by_role("button", name="Refresh now").is_disabled()
        else:
            page.get_by_role("button", name="Refresh now").click()  # a blocking refresh: a dialog names the lock and asks for the view's name
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("ACCESS EXCLUSIVE").wait_for(timeout=30_000)
            go = dialog.get_by_role("button", name="Refresh now")
            go.click()  # nothing typed: refused in the dialog, nothing done
            dialog.get_by_text("exactly to confirm").wait_for(timeout=30_000)
            typed = dialog.locator("input[type=text]")
            typed.fill("public.mv_deal_pipeline")
            go.click()  # typed without Enter: one click does it
            page.get_by_text("Refreshed public.mv_deal_pipeline").wait_for(timeout=60_000)
            wait_idle(page)
            # the table drawn after the refresh, without a reload
            after = grid_cells_once(page, lambda c: "mv_deal_pipeline" in c and c[
                c.index("mv_deal_pipeline") + 2].startswith("fresh"))
    if role == "dba":
        with psycopg.connect(database_url) as conn:
            last = conn.execute("SELECT role, outcome FROM dbpulse.audit_log WHERE action = "
                                "'refresh_matview' ORDER BY id DESC LIMIT 1").fetchone()
        assert last == ("dba", "ok")
        row = after.index("mv_deal_pipeline")  # View, Schema, Freshness, ... in that order
        assert after[row + 2].startswith("fresh"), after[row:row + 6]
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM dbpulse.matview_refresh_log WHERE "
                                "view_name = 'mv_deal_pipeline' AND recorded_by = 'dbpulse'"
                                ).fetchone()[0] >= 1


def _state_of(version: str):
    """A test on the cells: the migration's State cell (Version, Migration, State …) is there."""
    return lambda cells: version in cells and cells.index(version) + 2 < len(cells)


@pytest.mark.parametrize("dashboard", ["dba"], indirect=True)
def test_apply_phase_1_in_chromium(dashboard, database_url):
    """Apply phase 1 from the Migrations page as a DBA: the state table, the ledger and the
    rollback button follow at once; roll it back from the page, so the shared demo database
    stays as the other tests expect it."""

    from foundation.config import Settings
    from foundation.connections import admin_connection
    from operations import migrations

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/migrations", wait_until="domcontentloaded")
        page.get_by_role("button", name="Apply", exact=True).wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_text("Apply pending migrations up to").wait_for()
        page.locator("[data-testid=stSelectbox]", has_text="Apply pending").click()
        page.get_by_role("option", name="0001").click()
        wait_idle(page)
        page.get_by_role("button", name="Apply", exact=True).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Every statement lets reads and writes go on").wait_for(
            timeout=30_000)
        dialog.get_by_role("button", name="Apply", exact=True).click()
        page.get_by_text("Applied: 0001").wait_for(timeout=120_000)
        wait_idle(page)
        # the page agrees with what it just did, without a reload
        applied_cells = grid_cells_once(page, lambda c: _state_of("0001")(c) and c[
            c.index("0001") + 2] == "applied")
        ledger_empty = page.get_by_text("No migration has run here yet").count()
        rollback = page.get_by_role("button", name="Roll back the last applied migration")
        rollback_enabled = rollback.is_enabled()
        rollback.click()
        dialog = page.get_by_role("dialog")
        typed = dialog.locator("input[type=text]")
        typed.fill("0001")
        typed.press("Enter")
        dialog.get_by_role("button", name="Roll back the last applied migration").click()
        page.get_by_text("Rolled back: 0001").wait_for(timeout=120_000)
        wait_idle(page)
        rolled_cells = grid_cells_once(page, lambda c: _state_of("0001")(c) and c[
            c.index("0001") + 2] == "pending")
    try:
        # the state column of 0001 (Version, Migration, State, … in that order)
        assert applied_cells[applied_cells.index("0001") + 2] == "applied"
        assert ledger_empty == 0 and rollback_enabled
        assert rolled_cells[rolled_cells.index("0001") + 2] == "pending"
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT to_regclass('idx_message_events_user_status_created') "
                                "IS NULL").fetchone()[0]
    finally:  # whatever failed above, the shared database goes back to no migration applied
        settings = Settings(role="dba")
        with admin_connection(database_url, settings) as conn:
            migrations.rollback(conn, as_actor(settings, database_url), migration_files.discover(),
                                to="0")


def test_weekly_review_and_its_html_offline(synthetic_history, dashboard, tmp_path):
    """The review page shows the demo's phase 1 as the biggest improvement; its HTML export,
    downloaded from the page, draws its three charts with every network request refused."""

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/review", wait_until="domcontentloaded")
        page.get_by_text("Biggest improvement: Q1 message events list").first.wait_for(
            timeout=60_000)
        page.get_by_text("Synthetic demo data").first.wait_for(timeout=10_000)
        wait_idle(page)
        # plotly is loaded lazily: wait for the third chart to be drawn
        page.locator("[data-testid=stPlotlyChart]").nth(2).wait_for(timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="HTML report").click()
        report = tmp_path / "review.html"
        download.value.save_as(report)

        offline = browser.new_context(offline=True)
        requested = []
        offline.route("**/*", lambda route: (requested.append(route.request.url),
                                             route.abort() if not route.request.url
                                             .startswith("file:") else route.continue_()))
        view = offline.new_page()
        view.goto(report.as_uri(), wait_until="load")
        view.locator(".plotly-graph-div .main-svg").first.wait_for(timeout=30_000)
        charts = view.locator(".plotly-graph-div").count()
        drawn = view.evaluate("document.querySelectorAll('.plotly-graph-div .main-svg')"
                              ".length")
        text = view.inner_text("body")
        strokes = view.evaluate(
            "Array.from(document.querySelectorAll('.plotly-graph-div .scatterlayer "
            "path.js-line')).map(p => getComputedStyle(p).stroke)")
    assert charts == 3 and drawn >= 3
    # drawn in colour as the dashboard shows them, not black: Streamlit's plotly template
    # holds placeholders (#000001, #000002 …) that only its browser app turns into colours
    channels = [[int(c) for c in re.findall(r"\d+", s)[:3]] for s in strokes]
    assert channels and all(sum(rgb) > 120 for rgb in channels), strokes
    assert len(set(strokes)) >= 3, strokes
    assert [u for u in requested if not u.startswith("file:")] == []
    assert "Biggest improvement: Q1 message events list" in text
    assert "Synthetic demo data" in text


@pytest.mark.parametrize("dashboard", ["dba"], indirect=True)
def test_a_snapshot_taken_on_the_review_page_is_counted_at_once(synthetic_history, dashboard):
    def snapshots_this_period(page) -> int:
        text = page.locator("[data-testid=stCaptionContainer]",
                            has_text="This period:").filter(has_text="snapshots").first
        return int(re.search(r"This period: (\d+) snapshots", text.inner_text()).group(1))

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/review", wait_until="domcontentloaded")
        page.get_by_text("KPI scorecard").wait_for(timeout=60_000)
        wait_idle(page)
        before = snapshots_this_period(page)
        page.get_by_role("button", name="Take a snapshot now").click()
        page.get_by_text("stored").first.wait_for(timeout=60_000)
        wait_idle(page)
        after = snapshots_this_period(page)
    assert after == before + 1

"""Pages that live with the database in a real browser: Activity follows blocks and ends
sessions without a reload; every finding's explanation is in view at 1440 pixels; a phone reads
Overview (its health first), Slow queries and Activity without scrolling sideways. (Apart from tests/test_browser.py
so that the two halves can run on two cores.)"""

import threading

import psycopg
import pytest

from tests.conftest import as_actor, chromium, grid_cells_once, open_page, wait_idle


def test_activity_refreshes_itself(dashboard, database_url):
    """A blocked session that appears after the page was drawn shows up without a reload."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS activity_probe (id int)")
    holder = psycopg.connect(database_url)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{dashboard}/activity", wait_until="domcontentloaded")
            blocked = page.locator("[data-testid=stMetric]", has_text="Blocked sessions")
            blocked.wait_for(timeout=60_000)
            before = blocked.inner_text()
            holder.execute("LOCK TABLE activity_probe")     # then idle in its transaction

            def wait():
                with psycopg.connect(database_url) as waiter:
                    waiter.execute("SET lock_timeout = '30s'")
                    waiter.execute("SELECT * FROM activity_probe")
            threading.Thread(target=wait, daemon=True).start()
            # the page's own refresh shows it: nothing here reloads the page
            page.locator("[data-testid=stMetric]",
                         has_text="Blocked sessions").filter(has_text="1").wait_for(
                timeout=30_000)
    finally:
        holder.close()
    assert before.split()[-1] == "0"


@pytest.mark.parametrize("dashboard", ["dba"], indirect=True)
def test_terminate_from_activity_and_the_page_follows(dashboard, database_url):
    """A DBA terminates a session idle in a transaction through the dialog (typing its pid);
    the sessions table drawn next no longer lists it, without a reload."""
    holder = psycopg.connect(database_url, application_name="terminate-probe")
    holder.execute("SELECT 1")  # leaves the session idle in a transaction
    pid = str(holder.info.backend_pid)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{dashboard}/activity", wait_until="domcontentloaded")
            page.get_by_text("Cancel or terminate a session").wait_for(timeout=60_000)
            wait_idle(page)
            before = grid_cells_once(page, lambda c: pid in c)
            page.locator("[data-testid=stSelectbox]", has_text="Session").click()
            # typed to filter: the list draws only the options in view
            page.keyboard.type(pid)
            page.get_by_role("option", name=pid, exact=False).first.click()
            wait_idle(page)
            # nothing blocks: cancelling is what is chosen; terminating is the DBA's choice
            page.get_by_text("Terminate the session").click()
            wait_idle(page)
            page.get_by_role("button", name="Terminate", exact=True).click()
            dialog = page.get_by_role("dialog")
            typed = dialog.locator("input[type=text]")
            typed.fill(pid)
            typed.press("Enter")
            dialog.get_by_role("button", name="Terminate", exact=True).click()
            page.get_by_text(f"terminated session {pid}").wait_for(timeout=60_000)
            wait_idle(page)
            after = grid_cells_once(page, lambda c: pid not in c)
    finally:
        holder.close()
    assert pid in before and pid not in after


# The pages whose findings are explained in words, and the label that starts each explanation
EXPLAINED = {"settings": "Advice:", "indexes": "Why:", "matviews": "Why not concurrently:",
             "audit": "Detail:", "activity": "Ends it:", "alerts": "What:", "fleet": "Down:"}


def _plant_explained_findings(logins, secrets_file) -> psycopg.Connection:
    """What the pages explain but the demo has not always got: an audit row with a detail, a
    session blocking another (returned: closing it ends the block), an alert in the log, and a
    target that is down (in the secrets file the dashboard reads)."""
    from datetime import datetime, timezone

    from foundation.config import Settings
    from operations import actions, alert_log
    actions.refresh_view(as_actor(Settings(role="dba"), logins.admin_url), "public",
                         "mv_deal_pipeline", allow_blocking=True)
    with psycopg.connect(logins.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS explained_lock (id int)")
        alert_log.record(conn, conn.info.dbname, [{
            "id": "explained-1", "target": "t", "at": datetime.now(timezone.utc),
            "check": "unused_indexes", "state": "red", "title": "Unused indexes turned red",
            "summary": "3 indexes were not scanned in 30 days; together they hold 120 MB and "
                       "slow every write to their tables", "link": "", "page": "indexes"}])
    holder = psycopg.connect(logins.admin_url)
    holder.execute("LOCK TABLE explained_lock")  # then idle in its transaction

    def wait():
        with psycopg.connect(logins.admin_url, autocommit=True) as waiter:
            waiter.execute("SET lock_timeout = '120s'")
            try:
                waiter.execute("SELECT * FROM explained_lock")
            except psycopg.Error:
                pass  # ended with the holder
    threading.Thread(target=wait, daemon=True).start()
    secrets_file.write_text('[targets.away]\n'
                            'database_url = "postgresql://nobody:none@127.0.0.1:9/none"\n')
    return holder


def test_every_explanation_is_in_view_at_1440_pixels(dashboard, logins, tmp_path):
    """At 1440×900 each finding's reason, advice or detail is wrapped text inside the window:
    nothing cut off in a grid cell, nothing to scroll sideways for."""

    holder = _plant_explained_findings(logins, tmp_path / "none.toml")
    seen = {}
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name, label in EXPLAINED.items():
                open_page(page, dashboard, name)
                items = page.locator("[data-testid=stMarkdownContainer] li", has_text=label)
                items.first.wait_for(timeout=60_000)
                wait_idle(page)
                seen[name] = []
                for i in range(min(items.count(), 8)):
                    item = items.nth(i)
                    item.scroll_into_view_if_needed()
                    box = item.bounding_box()
                    whole = item.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
                    seen[name].append((box["x"], box["x"] + box["width"], whole,
                                       item.inner_text()))
            # the alert still red leads to its page, though no dashboard_url gives it a link
            open_page(page, dashboard, "alerts")
            to_indexes = page.locator("[data-testid=stPageLink]", has_text="Indexes page")
            to_indexes.first.wait_for(timeout=60_000)
            links_to_indexes = to_indexes.count()
    finally:
        holder.close()
    assert set(seen) == set(EXPLAINED)
    for name, boxes in seen.items():
        assert boxes, name
        for left, right, whole, text in boxes:
            assert left >= 0 and right <= 1440 and whole, (name, left, right, text)
            assert EXPLAINED[name] in text and len(text) > len(EXPLAINED[name]) + 3
    assert any("pg_terminate_backend" in text for *_, text in seen["activity"])
    assert any("slow every write" in text for *_, text in seen["alerts"])
    assert links_to_indexes == 1
    assert any("away" in text for *_, text in seen["fleet"])


def test_a_phone_reads_overview_slow_queries_and_activity(dashboard, tmp_path):
    """At 390×844 nothing needs sideways scrolling; the Overview's first health banner is on
    the first screen, its hit rates follow, the details after; the slow-query chart's bars keep
    most of the width with each statement's label above its bar, inside the window."""

    widths, bars, labels = {}, [], []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        for name in ("", "slow_queries", "activity"):
            open_page(page, dashboard, name)
            page.locator("[data-testid=stMetric]").first.wait_for(timeout=60_000)
            wait_idle(page)
            if name == "":
                buffer = page.locator("[data-testid=stMetric]", has_text="Buffer cache hit rate")
                buffer.wait_for(timeout=60_000)
                wait_idle(page)
                page.screenshot(path=str(tmp_path / "overview-phone.png"), full_page=True)
                first_banner = page.locator("[data-testid=stMain] [data-testid=stAlert]").first \
                    .bounding_box()
                buffer_box, buffer_text = buffer.bounding_box(), buffer.inner_text()
                redis_box = page.locator("[data-testid=stMetric]",
                                         has_text="Redis hit rate").bounding_box()
                details = page.get_by_role("heading", name="PostgreSQL").bounding_box()
            if name == "slow_queries":
                # plotly draws a chart once it scrolls into view
                page.locator("[data-testid=stPlotlyChart]").first.scroll_into_view_if_needed()
                chart = page.locator(".js-plotly-plot").first
                chart.locator(".barlayer path").first.wait_for(state="attached", timeout=30_000)
                bars = [b["width"] for b in (p.bounding_box() for p in
                                             chart.locator(".barlayer path").all()) if b]
                labels = [(t.bounding_box(), t.text_content())
                          for t in chart.locator(".annotation-text").all()]
            widths[name] = page.evaluate("document.documentElement.scrollWidth")
    assert widths == {"": 390, "slow_queries": 390, "activity": 390}
    # the first health banner is on the first screen, the hit rates follow, details after
    assert first_banner["y"] < 844, first_banner
    assert first_banner["y"] < buffer_box["y"] < details["y"]
    assert "%" in buffer_text, buffer_text  # a live number, not n/a
    assert redis_box["y"] < details["y"]
    assert bars and max(bars) > 0.6 * 390, bars
    assert len(labels) == len(bars)
    for box, text in labels:
        # a statement's text, however short ("BEGIN" is one), inside the window
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and text.strip(), (box, text)


# a card's name, figure, change and badge each on one line, cut with an ellipsis where too long;
# a link to another page likewise
CARD_PARTS = ("[data-testid=stMetricLabel] p, [data-testid=stMetricValue] div, "
              "[data-testid=stMetricDelta] div, [data-testid=stMain] [data-testid=stBadge] span, "
              "[data-testid=stMain] [data-testid=stPageLink] p")
CUT = """selector => {const parts = [...document.querySelectorAll(selector)];
    return [parts.length, parts.filter(e => e.scrollWidth > e.clientWidth + 1)
                               .map(e => e.innerText)]}"""


def test_no_card_or_link_is_cut_at_1280_pixels(dashboard):
    """At 1280 pixels (a small laptop, a projector) every card's name, figure and badge is
    whole, and every link to another page: a cut hid "or before" from the statistics' start, a
    range's method, a target, and half of the Overview's link to the tables' hit rates."""
    checked, cut = {}, {}
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # (the weekly review's cards need a history, which this dashboard has not)
        for name in ("overview", "slow_queries", "redis", "indexes", "buffer_cache", "plan",
                     "activity"):
            open_page(page, dashboard, name)
            page.locator("[data-testid=stMetric]").first.wait_for(timeout=60_000)
            wait_idle(page)
            parts, cut[name] = page.evaluate(CUT, CARD_PARTS)
            checked[name] = parts
    assert cut == {name: [] for name in cut}, cut
    assert min(checked.values()) > 0 and sum(checked.values()) >= 60, checked

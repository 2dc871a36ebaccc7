"""Every page read in a real browser as a new user would, as a viewer and as a DBA: no raw
values (None, NaN, NaT, JSON) and no SQL aliases as headers; a screenshot of each page at
1440×900. (The Overview on a phone: tests/test_browser_live.py.)"""

import re
import time

import pytest

from tests.conftest import PAGES, PROJECT_ROOT, chromium, open_page, wait_idle

RAW_WORDS = re.compile(r"\b(None|NaN|NaT|nan)\b")
SNAKE_CASE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
RAW_JSON = re.compile(r"[{\[]\s*\"\w+\"\s*:")
# what a DBA sees differently from a viewer: a page showing controls by role names one of these
BY_ROLE = re.compile(r"\b(is_dba|disabled_for|dba_note|require_dba|confirm)\b")


def pages_for(role: str) -> list[str]:
    """Every page for a viewer; for a DBA the pages that differ by role (the others are drawn
    from the same code and data whoever looks)."""
    return [name for name in PAGES if role == "viewer"
            or BY_ROLE.search((PROJECT_ROOT / "views" / f"{name}.py").read_text())]


def _settle(page, timeout_s: float = 90) -> None:
    """Until the page has run and stopped changing for half a second: the app says "not
    running" before its first run too, and the data grids (with their accessible copy) draw
    after the script has finished; a closed expander's grid never draws."""
    page.locator("[data-testid=stMain] h1").first.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    last, same = None, 0
    while same < 3 and time.monotonic() < deadline:
        wait_idle(page, timeout_s * 1000)
        shape = page.evaluate(SHAPE)
        same = same + 1 if shape == last and shape["drawn"] else 0
        last = shape
        page.wait_for_timeout(150)


SHAPE = """() => {
    const grids = [...document.querySelectorAll('[data-testid=stDataFrame]')];
    return {text: document.querySelector('[data-testid=stMain]').innerText.length,
            grids: grids.length,
            cells: document.querySelectorAll('[data-testid=stDataFrame] td').length,
            drawn: grids.every(g => !g.checkVisibility() || g.querySelector('th'))};
}"""


def _read(page) -> tuple[str, list[str], list[str]]:
    """The page's visible text, its table headers and its table cells (the grid keeps an
    accessible copy of what it draws on its canvas)."""
    main = page.locator("[data-testid=stMain]").inner_text()
    headers = page.locator("[data-testid=stDataFrame] th[role=columnheader]").all_inner_texts()
    cells = page.locator("[data-testid=stDataFrame] td[role=gridcell]").all_inner_texts()
    return main, headers, cells


@pytest.mark.parametrize("dashboard", ["viewer", "dba"], indirect=True)
def test_every_page_reads_without_raw_values_or_aliases(synthetic_history, dashboard,
                                                        tmp_path, request):
    role = request.node.callspec.params["dashboard"]
    problems, tables_seen = [], 0
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for name in pages_for(role):
            open_page(page, dashboard, name)
            _settle(page)
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
            main, headers, cells = _read(page)
            tables_seen += bool(headers)
            for header in headers:
                if SNAKE_CASE.match(header.strip()):
                    problems.append(f"{name}: header {header!r}")
            for text in [main] + cells:
                for raw in RAW_WORDS.findall(text) + RAW_JSON.findall(text):
                    problems.append(f"{name}: {raw!r} in {text[:120]!r}")
            if page.locator("[data-testid=stException]").count():
                problems.append(f"{name}: an exception is shown")
    assert problems == []
    # the check read real tables, not empty pages
    assert tables_seen >= {"viewer": 12, "dba": 5}[role]

"""Nothing a database names is interpreted by the browser: objects named with Markdown images
and links, bold, HTML and javascript: links are shown literally on every page, in both review
exports and in Slack's text, and a beacon the names point at receives nothing."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from psycopg import sql

from demo.stack import create_database, free_port
from foundation.config import Settings, Target
from foundation.connections import admin_connection, monitoring_connection
from foundation.markup import shown
from foundation.roles import Actor
from operations import actions, review, snapshots
from operations.history import Period
from reports import weekly
from tests.conftest import (
    PAGES,
    chromium,
    open_page,
    require_chromium,
    running_dashboard,
    wait_idle,
)


class Beacon:
    """A local HTTP server that counts every request: a name that became an image or a fetched
    link would reach it."""

    def __init__(self):
        hits, posts = self.hits, self.posts = [], []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def do_POST(self):  # a webhook receiver too (Slack's text)
                posts.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def beacon():
    found = Beacon()
    yield found
    found.close()


def hostile_names(port: int) -> dict[str, str]:
    at = f"http://127.0.0.1:{port}"
    return {"view": f"m![p]({at}/m.png)", "table": "**b** <i>t</i>",
            "index": f"<img src={at}/i.png>", "twin": "[x](javascript:alert(1))",
            "schema": f"![s]({at}/s.png)"}


@pytest.fixture(scope="module")
def hostile_db(servers, beacon):
    names = hostile_names(beacon.port)
    db = f"hostile_{uuid.uuid4().hex[:6]}"
    url = create_database(servers[0], db, "pg_stat_statements")
    with psycopg.connect(url, autocommit=True) as conn:
        ident = {k: sql.Identifier(v) for k, v in names.items()}
        conn.execute(sql.SQL("CREATE SCHEMA {schema}; "
                             "CREATE TABLE {schema}.{table} (id int NOT NULL, v text); "
                             "INSERT INTO {schema}.{table} SELECT g, 'v' || g "
                             "FROM generate_series(1, 20000) g; "
                             "CREATE INDEX {index} ON {schema}.{table} (id); "
                             "CREATE INDEX {twin} ON {schema}.{table} (id); "
                             "CREATE MATERIALIZED VIEW {schema}.{view} AS "
                             "SELECT id FROM {schema}.{table} WHERE id < 10; "
                             "ANALYZE").format(**ident))
        conn.execute(sql.SQL("SELECT count(*) FROM {schema}.{table} WHERE v = %s").format(
            **ident), (f"![q](http://127.0.0.1:{beacon.port}/q.png)",))
    who = Actor("tester", "dba", Target("hostile", url, url), Settings(role="dba"))
    actions.refresh_view(who, names["schema"], names["view"], allow_blocking=True)
    with admin_connection(url, who.settings) as hist, \
            monitoring_connection(url, who.settings) as mon:
        for rows in (1000, 2000):  # the table grows between two snapshots
            snapshots.take(mon, hist, who, source=db, redis_urls=())
            hist.execute(sql.SQL("INSERT INTO {}.{} SELECT g, 'w' FROM generate_series(1, %s) g")
                         .format(sql.Identifier(names["schema"]), sql.Identifier(names["table"])),
                         (rows * 50,))
        snapshots.take(mon, hist, who, source=db, redis_urls=())
    yield url, names
    with psycopg.connect(servers[0], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def test_every_page_shows_hostile_names_literally_and_fetches_nothing(hostile_db, beacon,
                                                                      tmp_path):
    require_chromium()

    url, names = hostile_db
    env = {"DATABASE_URL": url, "REDIS_URL": "", "DBPULSE_ROLE": "dba",
           "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")}
    texts = {}
    with running_dashboard(env) as dashboard, chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for name in PAGES:
            open_page(page, dashboard, name)
            wait_idle(page)
            # text_content: closed expanders' text too
            texts[name] = page.locator("[data-testid=stMain]").text_content()
            assert not page.locator("[data-testid=stMain] img[src*='127.0.0.1']").count()
            assert not page.locator("a[href^='javascript']").count(), name
    assert beacon.hits == []
    view = f"{names['schema']}.{names['view']}"
    assert view in texts["matviews"]  # literally, brackets and all
    assert f'"{names["schema"]}"."{names["index"]}"' in texts["overview"]  # the duplicate


def test_both_review_exports_keep_names_as_text(hostile_db, beacon):
    url, names = hostile_db
    now = datetime.now(timezone.utc) + timedelta(minutes=1)
    with monitoring_connection(url, Settings()) as conn:
        found = review.build_review(conn, conn.info.dbname,
                                    Period(now - timedelta(days=2), now - timedelta(days=1)),
                                    Period(now - timedelta(days=1), now), Settings())
    markdown = weekly.render_markdown(found, Settings())
    page = weekly.render_html(found, Settings())
    assert f"{names['schema']}.{names['table']}" in shown(markdown)  # the table that grew
    assert "**b**" not in markdown and "](http" not in markdown
    assert "<i>t</i>" not in page and "&lt;i&gt;t&lt;/i&gt;" in page
    assert "<img src=http" not in page


def test_slack_text_keeps_names_inert(beacon):
    from operations.alerts import Alert, slack

    slack(f"http://127.0.0.1:{beacon.port}/slack")(Alert(
        "t", "invalid_indexes", "1 index is INVALID", "red",
        "<http://evil.example|click> <!channel> on x & y", datetime.now(timezone.utc)))
    [(path, body)] = [hit for hit in beacon.posts if hit[0] == "/slack"]
    text = json.loads(body)["text"]
    assert "<" not in text and "&lt;!channel&gt;" in text and "x &amp; y" in text

"""Who is looking, in a real browser on a real `streamlit run app.py`: sign-in with a real OpenID
provider (oidc-provider-mock, started here), the authenticating-proxy header with and without a
trusted address, single-user local mode on 127.0.0.1, and the refused exposed start."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
import pytest

from demo.stack import free_port
from foundation import migration_files
from foundation.config import Settings
from foundation.connections import admin_connection
from operations import migrations
from tests.conftest import PROJECT_ROOT, as_actor, chromium, require_chromium, wait_idle

COOKIE_SECRET = "cookie-secret-for-the-suite-Zq81"


def _wait_healthy(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{what} did not answer within 60 s")


@contextmanager
def _provider():
    """A real OpenID provider that requires registered clients (so a wrong secret fails)."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "oidc-provider-mock"), "--port",
                             str(port), "--require-registration", "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(f"{base}/.well-known/openid-configuration", proc, "oidc-provider-mock")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _register(provider: str, redirect_uri: str) -> tuple[str, str]:
    request = urllib.request.Request(
        f"{provider}/oauth2/clients", data=json.dumps({"redirect_uris": [redirect_uri]}).encode(),
        headers={"Content-Type": "application/json"})
    client = json.load(urllib.request.urlopen(request, timeout=5))
    return client["client_id"], client["client_secret"]


def _set_user(provider: str, email: str, groups: list[str]) -> None:
    request = urllib.request.Request(
        f"{provider}/users/{email}", method="PUT",
        data=json.dumps({"email": email, "groups": groups}).encode(),
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


@contextmanager
def _dashboard(tmp_path, database_url, secrets: str, *, role="viewer", port=None, args=(),
               env_extra: dict | None = None):
    require_chromium()
    port = port or free_port()
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(secrets)
    env = {**os.environ, "DATABASE_URL": database_url, "DBPULSE_SECRETS_FILE": str(secrets_file),
           "DBPULSE_ROLE": role, **(env_extra or {})}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
         "--server.port", str(port), "--secrets.files", str(secrets_file), *args],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, "streamlit")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def _settled(page) -> None:
    wait_idle(page)


def _sidebar(page) -> str:
    return " ".join(page.locator("[data-testid=stSidebar]").inner_text().split())


def _sign_in(browser, url: str, email: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_text(f"Signed in as {email}").wait_for(timeout=60_000)
    _settled(page)
    return page


def _rollback_all(database_url):
    settings = Settings(role="dba")
    with admin_connection(database_url, settings) as conn:
        migrations.rollback(conn, as_actor(settings, database_url), migration_files.discover(), to="0")


def test_two_people_signed_in_at_once_have_their_roles_and_the_audit_tells_them_apart(
        tmp_path, database_url):
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    with _provider() as provider:
        client_id, client_secret = _register(provider, redirect)
        _set_user(provider, "carl@partner.org", ["db-admins"])
        secrets = f"""
[auth]
redirect_uri = "{redirect}"
cookie_secret = "{COOKIE_SECRET}"
client_id = "{client_id}"
client_secret = "{client_secret}"
server_metadata_url = "{provider}/.well-known/openid-configuration"

[access]
dba = ["ann@example.com", "group:db-admins"]
viewer = ["@example.com"]
unknown = "refuse"
"""
        with _dashboard(tmp_path, database_url, secrets, port=port) as (url, _), \
                chromium() as browser:
            ann = _sign_in(browser, url, "ann@example.com")
            bob = _sign_in(browser, url, "bob@example.com")
            carl = _sign_in(browser, url, "carl@partner.org")   # DBA through his group
            roles = {name: _sidebar(p) for name, p in
                     (("ann", ann), ("bob", bob), ("carl", carl))}
            # both open the Migrations page at once; the DBA applies the next migration
            for page in (ann, bob):
                page.goto(f"{url}/migrations", wait_until="domcontentloaded")
                page.get_by_role("button", name="Apply", exact=True).wait_for(timeout=60_000)
                _settled(page)
            ann.get_by_role("button", name="Apply", exact=True).click()
            dialog = ann.get_by_role("dialog")
            dialog.get_by_text("This applies 0001").wait_for(timeout=30_000)
            dialog.get_by_role("button", name="Apply", exact=True).click()
            ann.get_by_text("Applied: 0001").wait_for(timeout=120_000)
            # the viewer sees the same button disabled (the core would refuse the press)
            bob_apply = bob.get_by_role("button", name="Apply", exact=True)
            bob_disabled = bob_apply.is_disabled()
            # the viewer reads the audit log and finds both actions
            bob.goto(f"{url}/audit", wait_until="domcontentloaded")
            bob.locator("[data-testid=stMetric]", has_text="Refused").wait_for(
                timeout=60_000)
            _settled(bob)
            metrics = " ".join(bob.locator("[data-testid=stMetric]").all_inner_texts())
            with bob.expect_download() as download:
                bob.get_by_role("button", name="Download CSV").click()
            csv = Path(download.value.path()).read_text()
            # someone in no role list sees nothing but why
            eve = browser.new_context().new_page()
            eve.goto(url, wait_until="domcontentloaded")
            eve.get_by_role("button", name="Sign in").click()
            eve.locator("input[name=sub]").fill("eve@elsewhere.org")
            eve.get_by_role("button", name="Authorize").click()
            eve.get_by_text("eve@elsewhere.org is in no role list").wait_for(timeout=60_000)
            _settled(eve)
            eve_nav = eve.locator("[data-testid=stSidebarNav]").count()
            eve_metrics = eve.locator("[data-testid=stMetric]").count()
    try:
        assert "Signed in as ann@example.com" in roles["ann"] and "Role: dba" in roles["ann"]
        assert "Signed in as bob@example.com" in roles["bob"] and "Role: viewer" in roles["bob"]
        assert "Role: dba" in roles["carl"]
        assert eve_nav == 0 and eve_metrics == 0
        assert bob_disabled
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("""
                SELECT actor, role, outcome FROM dbpulse.audit_log
                WHERE action = 'migrate_apply' ORDER BY id DESC LIMIT 1""").fetchall()
        assert rows == [("ann@example.com", "dba", "ok")]
        assert "ann@example.com" in csv and "migrate_apply" in csv
        assert "Refused" in metrics
        assert client_secret not in csv and COOKIE_SECRET not in csv
    finally:
        _rollback_all(database_url)


def _page_text(url: str, extra_headers: dict | None = None, path: str = "") -> str:
    with chromium() as browser:
        context = browser.new_context(extra_http_headers=extra_headers or {})
        page = context.new_page()
        page.goto(f"{url}/{path}", wait_until="domcontentloaded")
        _settled(page)
        page.locator("[data-testid=stMain]").wait_for()
        time.sleep(0.5)
        _settled(page)
        return " ".join(page.locator("[data-testid=stApp]").inner_text().split())


def test_proxy_header_with_and_without_a_trusted_address(tmp_path, database_url):
    header = {"X-Forwarded-Email": "ann@example.com"}
    trusted = """
[access]
proxy_header = "X-Forwarded-Email"
trusted_proxies = ["127.0.0.1"]
dba = ["ann@example.com"]
"""
    # as `cli.py serve` starts it: the server does not take X-Forwarded-For from anyone
    no_forwarding = {"FORWARDED_ALLOW_IPS": ""}
    with _dashboard(tmp_path, database_url, trusted, env_extra=no_forwarding) as (url, _):
        signed = _page_text(url, header, "audit")
        missing = _page_text(url, None)
        listed = _page_text(url, {"X-Forwarded-Email": "eve@evil.org, ann@example.com"})
    untrusted = trusted.replace('["127.0.0.1"]', '["10.9.9.9"]')
    with _dashboard(tmp_path, database_url, untrusted, env_extra=no_forwarding) as (url, _):
        refused = _page_text(url, header)
    # plain `streamlit run`: uvicorn would take X-Forwarded-For from loopback, so a local client
    # could pose as the proxy; DB Pulse refuses to serve at all
    with _dashboard(tmp_path, database_url, untrusted.replace("10.9.9.9", "127.0.0.1")) as (
            url, _):
        forwarded = _page_text(url, {**header, "X-Forwarded-For": "10.9.9.9"})
    assert "Signed in as ann@example.com (through the proxy)" in signed and "Role: dba" in signed
    assert "Audit log" in signed
    assert "carries no X-Forwarded-Email header" in missing and "Audit log" not in missing
    assert "127.0.0.1, which is not a trusted proxy" in refused
    assert "ann@example.com" not in refused.replace("X-Forwarded-Email", "")
    assert "holds more than one address" in listed and "Role: dba" not in listed
    assert "trusts X-Forwarded-For" in forwarded and "Role: dba" not in forwarded


def test_local_mode_listens_on_loopback_only_and_says_so(tmp_path, database_url):
    with _dashboard(tmp_path, database_url, "", role="dba") as (url, proc):
        text = _page_text(url)
        listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN}
    assert listening and listening <= {"127.0.0.1"}
    assert "Single-user local mode" in text and "DBA actions are on" in text
    assert "Role: dba" in text


def test_an_exposed_dba_without_sign_in_is_refused_at_start(tmp_path, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "DBPULSE_ROLE": "dba",
           "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")}
    served = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "serve", "--address",
                             "0.0.0.0", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    assert served.returncode == 2
    assert "will not serve DBA actions on 0.0.0.0 without sign-in" in served.stderr
    # started around the CLI: every page says the same and shows nothing else
    with _dashboard(tmp_path, database_url, "", role="dba",
                    args=("--server.address", "0.0.0.0")) as (url, _):
        text = _page_text(url)
    assert "will not serve DBA actions on 0.0.0.0" in text and "Overview" not in text


def _sign_in_page(tmp_path, monkeypatch, database_url, auth: dict):
    """The page someone not signed in sees, drawn by AppTest (nobody is signed in there)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    lines = ["[auth]"] + [f'{k} = "{v}"' for k, v in auth.items()]
    (tmp_path / "auth.toml").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "auth.toml"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = auth
    at.run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error] + [m.value for m in at.markdown]
    return " ".join(shown), [b.label for b in at.button], at


def test_a_wrong_client_secret_and_an_unreachable_provider_are_said_before_sign_in(
        tmp_path, monkeypatch, database_url, closed_port):
    with _provider() as provider:
        client_id, client_secret = _register(provider, "http://127.0.0.1:1/oauth2callback")
        auth = {"redirect_uri": "http://127.0.0.1:1/oauth2callback", "cookie_secret": COOKIE_SECRET,
                "client_id": client_id, "client_secret": client_secret,
                "server_metadata_url": f"{provider}/.well-known/openid-configuration"}
        right, buttons, at = _sign_in_page(tmp_path, monkeypatch, database_url, auth)
        wrong, _, _ = _sign_in_page(tmp_path, monkeypatch, database_url,
                                    {**auth, "client_secret": "Wrong-Secret-77"})
    gone, _, _ = _sign_in_page(tmp_path, monkeypatch, database_url, {
        **auth, "server_metadata_url": f"http://127.0.0.1:{closed_port}/.well-known/x"})
    assert "Sign in" in buttons and "Sign-in is not possible" not in right
    assert not at.metric and not at.dataframe                  # nothing shown before sign-in
    assert "rejects DB Pulse's client_id or client_secret" in wrong
    assert "cannot be reached" in gone and str(closed_port) in gone
    for text in (right, wrong, gone):
        assert client_secret not in text and "Wrong-Secret-77" not in text
        assert COOKIE_SECRET not in text

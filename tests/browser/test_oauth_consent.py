"""An MCP client connecting through the portal's OAuth consent page, in a real browser,
against the whole running service.

The client's side is plain HTTP (httpx): it registers itself (RFC 7591), builds an
authorization URL with PKCE S256 and `resource` = the portal's /mcp, and listens on a
loopback port for the redirect (RFC 8252). The person's side is Chromium: sign in,
read the consent page, pick read and write, approve; deny a second request; revoke the
app on the dashboard. charlie, who has no Attio connection, is offered to connect one
first. Screenshots go to test-artifacts/oauth/.

The steps run in order and share one service, one browser and one client. A step that
needs an earlier one fails (never skips) when it didn't complete.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.faults.harness import free_port

from .conftest import REPO, Service

SCREENSHOTS = REPO / "test-artifacts" / "oauth"
CLIENT_NAME = "Inspector on the laptop"
CHARLIE_PASSWORD = "charlie-" + secrets.token_urlsafe(16)
WRITE_TOOLS = {"create_note", "delete_note", "create_record", "delete_record"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}

expect.set_options(timeout=15_000)


def snap(page: Page, name: str) -> None:
    """A full-page screenshot, numbered in the order taken."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    taken = len(list(SCREENSHOTS.glob("*.png")))
    page.screenshot(path=str(SCREENSHOTS / f"{taken + 1:02d}-{name}.png"), full_page=True)


# --- the MCP client's side ----------------------------------------------------------------


class Loopback:
    """The client's redirect listener on 127.0.0.1: records each query it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        self.received: list[dict[str, str]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/callback":
                    received.append({k: v[0] for k, v in parse_qs(parts.query).items()})
                body = b"<!doctype html><title>Client</title><h1>Back in the client</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Loopback:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Authorization:
    """One authorization request: its URL and the secrets only the client knows."""

    url: str
    state: str
    verifier: str = field(repr=False)


def authorization(service: Service, client_id: str, redirect_uri: str) -> Authorization:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "attio.read attio.write",
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "resource": f"{service.base_url}/mcp",
        }
    )
    return Authorization(f"{service.base_url}/oauth/authorize/?{query}", state, verifier)


def tools_list(service: Service, token: str) -> httpx.Response:
    return httpx.post(
        f"{service.base_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
        timeout=30,
    )


# --- the person's side --------------------------------------------------------------------


class Journey:
    """What the steps so far achieved, for the steps after them."""

    def __init__(self, loopback: Loopback) -> None:
        self.loopback = loopback
        self.done: set[str] = set()
        self.client_id = ""
        self.access_token = ""
        self.alice: Page | None = None

    def require(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.fail(f"needs the earlier step(s) {missing}, which did not complete")


@pytest.fixture(scope="module")
def journey(browser, service: Service) -> Iterator[Journey]:
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink(missing_ok=True)
    context = browser.new_context(base_url=service.base_url)
    context.set_default_timeout(15_000)
    context.set_default_navigation_timeout(20_000)
    with Loopback() as loopback:
        journey = Journey(loopback)
        journey.alice = context.new_page()
        yield journey
    context.close()


def sign_in_when_asked(page: Page, service: Service, username: str, password: str) -> None:
    """On the portal's sign-in page (where the authorization URL sent the browser)."""
    page.wait_for_url(re.compile(re.escape(f"{service.base_url}/accounts/login/?next=")))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Sign in").click()


def consent_card(page: Page):
    return page.locator("section.card", has_text="Connect")


def connected_apps(page: Page):
    return page.locator("section.card", has_text="Connected apps")


def test_step1_alice_approves_read_and_write_and_the_client_lists_write_tools(journey, service):
    page = journey.alice
    base = service.base_url
    loopback = journey.loopback

    # alice's Attio workspace, connected as any user connects it: the fake's consent page.
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", service.passwords["alice"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    page.get_by_role("button", name="Connect Attio").click()
    page.wait_for_url(re.compile(re.escape(service.fake_url) + r"/authorize\?"))
    page.select_option("#workspace", label="Acme (acme)")
    page.click("#approve")
    page.wait_for_url(f"{base}/")
    expect(page.locator(".messages")).to_contain_text("Connected the Attio workspace “Acme”")
    expect(connected_apps(page)).to_contain_text("No connected apps.")
    # Signed out, so the authorization URL has to send her through the sign-in page.
    page.get_by_role("button", name="Sign out").click()

    # The client registers itself, with its loopback redirect URI.
    registered = httpx.post(
        f"{base}/oauth/register/",
        json={
            "client_name": CLIENT_NAME,
            "redirect_uris": [loopback.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    journey.client_id = registered.json()["client_id"]
    request = authorization(service, journey.client_id, loopback.redirect_uri)

    page.goto(request.url)
    snap(page, "sign-in-for-client")
    sign_in_when_asked(page, service, "alice", service.passwords["alice"])
    page.wait_for_url(re.compile(re.escape(f"{base}/oauth/authorize/?")))
    card = consent_card(page)
    expect(page.locator("h1")).to_have_text(f"Connect {CLIENT_NAME} to Attio")
    expect(card).to_contain_text(f"{CLIENT_NAME} (registered itself with the portal")
    expect(card.locator("strong", has_text="127.0.0.1")).to_be_visible()
    expect(page.get_by_label("Attio workspace")).to_have_value(re.compile(r"\d+"))
    expect(page.locator("#id_connection option")).to_have_text(["Acme"])
    read_only = page.get_by_role("radio", name=re.compile("^Read only"))
    read_write = page.get_by_role("radio", name=re.compile("^Read and write"))
    expect(read_only).to_be_checked()
    expect(read_write).not_to_be_checked()
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    expect(page.get_by_role("button", name="Deny")).to_be_visible()
    # Only Approve sends `allow`: a box for it would make Deny approve when ticked.
    expect(page.locator("input[name=allow]")).to_have_count(0)
    snap(page, "consent")

    read_write.check()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(re.escape(loopback.redirect_uri) + r"\?"))
    expect(page.locator("h1")).to_have_text("Back in the client")
    assert len(loopback.received) == 1, loopback.received
    answer = loopback.received[0]
    assert answer["state"] == request.state, answer
    assert answer["iss"] == base, answer
    assert "error" not in answer and answer["code"], answer

    # The client exchanges the code (PKCE proves it is the one that asked).
    token = httpx.post(
        f"{base}/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": loopback.redirect_uri,
            "client_id": journey.client_id,
            "code_verifier": request.verifier,
            "resource": f"{base}/mcp",
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    tokens = token.json()
    assert set(tokens["scope"].split()) == {"attio.read", "attio.write"}, tokens["scope"]
    assert tokens["access_token"].startswith("atpo_at_")
    journey.access_token = tokens["access_token"]

    listed = tools_list(service, journey.access_token)
    assert listed.status_code == 200, listed.text
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert {"whoami", "search_records"} <= names, names
    assert names >= WRITE_TOOLS, sorted(WRITE_TOOLS - names)
    journey.done.add("approved")


def test_step2_denying_sends_access_denied_back_to_the_client(journey, service):
    journey.require("approved")
    page = journey.alice
    base = service.base_url
    loopback = journey.loopback
    request = authorization(service, journey.client_id, loopback.redirect_uri)

    page.goto(request.url)  # signed in already: straight to the consent page
    expect(page.locator("h1")).to_have_text(f"Connect {CLIENT_NAME} to Attio")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(re.compile(re.escape(loopback.redirect_uri) + r"\?"))
    assert len(loopback.received) == 2, loopback.received
    answer = loopback.received[-1]
    assert answer["error"] == "access_denied", answer
    assert answer["state"] == request.state, answer
    assert answer["iss"] == base, answer
    assert "code" not in answer, answer

    # Denying made no second app, and the first one's token still works.
    page.goto(f"{base}/")
    expect(connected_apps(page).locator("tbody tr")).to_have_count(1)
    assert tools_list(service, journey.access_token).status_code == 200
    journey.done.add("denied")


def test_step3_the_dashboard_lists_the_app_and_revoke_ends_its_token(journey, service):
    journey.require("approved")
    page = journey.alice
    base = service.base_url
    page.goto(f"{base}/")
    rows = connected_apps(page).locator("tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.locator("strong")).to_have_text(CLIENT_NAME)
    expect(row).to_contain_text("registered itself")
    expect(row.locator('[data-label="Workspace"]')).to_have_text("Acme")
    expect(row.locator('[data-label="Access"]')).to_contain_text("read-write")
    expect(row.locator('[data-label="Access"]')).to_contain_text("full tools")
    expect(row.locator('[data-label="Last used"]')).not_to_have_text("never")
    snap(page, "dashboard-connected-apps")

    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url(f"{base}/")
    expect(page.locator(".messages")).to_contain_text(f"Revoked “{CLIENT_NAME}”")
    expect(rows).to_have_count(0)
    expect(connected_apps(page)).to_contain_text("No connected apps.")
    snap(page, "dashboard-app-revoked")

    refused = tools_list(service, journey.access_token)
    assert refused.status_code == 401, refused.text
    assert "resource_metadata=" in refused.headers["www-authenticate"]


def create_user(service: Service, username: str, password: str) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            f"User.objects.create_user({username!r}, '{username}@example.com', {password!r})",
        ],
        env=service.env,
        check=True,
        cwd=REPO,
        timeout=120,
    )


def test_step4_a_user_without_a_connection_is_offered_to_connect_attio_first(
    journey, service, browser
):
    journey.require("approved")
    base = service.base_url
    loopback = journey.loopback
    create_user(service, "charlie", CHARLIE_PASSWORD)
    request = authorization(service, journey.client_id, loopback.redirect_uri)

    context = browser.new_context(base_url=base)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(request.url)
        sign_in_when_asked(page, service, "charlie", CHARLIE_PASSWORD)
        page.wait_for_url(re.compile(re.escape(f"{base}/oauth/authorize/?")))
        card = consent_card(page)
        expect(card).to_contain_text("You have no connected Attio workspace yet.")
        expect(card.get_by_role("button", name="Connect Attio")).to_be_visible()
        expect(card.get_by_role("link", name="Use an Attio API key")).to_be_visible()
        # Nothing to approve with: no workspace choice and no Approve button, only Deny.
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.locator("select[name=connection]")).to_have_count(0)
        expect(page.get_by_role("button", name="Deny")).to_be_visible()
        snap(page, "consent-no-connection")

        # Connecting comes back to the consent page, now with the workspace to pick.
        card.get_by_role("button", name="Connect Attio").click()
        page.wait_for_url(re.compile(re.escape(service.fake_url) + r"/authorize\?"))
        page.select_option("#workspace", label="Globex (globex)")
        page.click("#approve")
        page.wait_for_url(re.compile(re.escape(f"{base}/oauth/authorize/?")))
        expect(page.locator("#id_connection option")).to_have_text(["Globex"])
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        snap(page, "consent-after-connecting")
    finally:
        context.close()

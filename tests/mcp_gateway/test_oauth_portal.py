"""The OAuth authorization server from the portal's side: connected apps and their clients
in the admin and on the dashboard, what else revokes them (deactivation, disconnecting the
workspace), no token anywhere readable, and the production settings it needs.

Tokens come from the real flow over HTTP (`connect_app`): dynamic registration, sign-in
and consent on the portal's pages, the code exchanged for tokens.
"""

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core import checks
from django.urls import reverse
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from attio_portal.accounts import deactivate_user
from connections.models import Connection
from mcp_gateway import auth
from mcp_gateway.models import ApiKeyEvent, ConnectedApp
from mcp_gateway.oauth_server import token_checksum
from tests.connections.test_secrets import every_table_dump, log_text
from tests.leaks import leaks
from tests.test_settings import run_django

from .oauth_flow import LOOPBACK_REDIRECT, Person

REGISTRATION_SCOPE = "oauth2_provider:registration"


@dataclass
class Approval:
    """What a client holds after one approval: every secret the flow handed it."""

    client_id: str
    registration_access_token: str
    code: str
    code_verifier: str
    access_token: str
    refresh_token: str

    @property
    def secrets(self) -> list[str]:
        return [self.registration_access_token, self.code, self.access_token, self.refresh_token]


def connect_app(
    base: str,
    username: str,
    *,
    client_name: str = "Portal test client",
    access: str = "read_only",
    connection: Connection | None = None,
    tool_profile: str | None = None,
) -> Approval:
    """Register a client, have `username` approve it on the consent page, exchange the code."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    registration = httpx.post(
        f"{base}/oauth/register/",
        json={
            "client_name": client_name,
            "redirect_uris": [LOOPBACK_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registration.status_code == 201, registration.text
    client = registration.json()
    state = secrets.token_urlsafe(16)
    url = f"{base}/oauth/authorize/?" + urlencode(
        {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": LOOPBACK_REDIRECT,
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
            "state": state,
            "resource": f"{base}/mcp",
        }
    )

    async def approve():
        person = Person(base, username)
        try:
            return await person.approve(
                url, access=access, connection=connection, tool_profile=tool_profile
            )
        finally:
            await person.close()

    answer = async_to_sync(approve)()
    assert answer["state"] == state
    tokens = httpx.post(
        f"{base}/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": LOOPBACK_REDIRECT,
            "client_id": client["client_id"],
            "code_verifier": verifier,
            "resource": f"{base}/mcp",
        },
    )
    assert tokens.status_code == 200, tokens.text
    return Approval(
        client_id=client["client_id"],
        registration_access_token=client["registration_access_token"],
        code=answer["code"],
        code_verifier=verifier,
        access_token=tokens.json()["access_token"],
        refresh_token=tokens.json()["refresh_token"],
    )


def call_mcp(base: str, token: str, method: str = "tools/list", params: dict | None = None):
    return httpx.post(
        f"{base}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
    )


def app_tokens() -> tuple[list[AccessToken], list[RefreshToken]]:
    """The tokens the flow issued to apps (registration tokens left out)."""
    access = list(AccessToken.objects.exclude(scope=REGISTRATION_SCOPE))
    return access, list(RefreshToken.objects.all())


# --- The admin ----------------------------------------------------------------------------

APPS = "/admin/mcp_gateway/connectedapp/"
CLIENTS = "/admin/oauth2_provider/application/"


def test_connected_app_admin_pages_show_no_token_or_checksum(
    portal, client, staff, alice, alice_connection
):
    grant = connect_app(portal, "alice", client_name="Claude")
    app = ConnectedApp.objects.get()
    client.force_login(staff)

    pages = [client.get(APPS), client.get(f"{APPS}{app.pk}/change/")]

    assert all(page.status_code == 200 for page in pages)
    assert "Claude" in pages[0].text and "Acme" in pages[0].text
    for page in pages:
        for secret in grant.secrets:
            assert secret not in page.text
            assert token_checksum(secret) not in page.text
        assert app.code_checksum not in page.text
        assert str(app.token_family) not in page.text


def test_revoke_selected_apps_asks_for_a_reason_then_revokes_and_records_it(
    portal, client, staff, alice, alice_connection
):
    grant = connect_app(portal, "alice")
    app = ConnectedApp.objects.get()
    client.force_login(staff)
    selected = {"action": "revoke_selected", "_selected_action": [str(app.pk)]}

    asked = client.post(APPS, selected)
    assert 'name="reason"' in asked.text
    assert auth.check_oauth_token(grant.access_token) is not None

    done = client.post(APPS, {**selected, "apply": "1", "reason": "Lost laptop"}, follow=True)

    assert "Revoked 1 connected app." in done.text
    app.refresh_from_db()
    assert app.revoked_at is not None and app.revoked_reason == "Lost laptop"
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.APP_REVOKED)
    assert event.connected_app == app and event.actor == staff and event.subject == alice
    assert event.reason == "Lost laptop"
    assert event.detail["client_id"] == grant.client_id
    assert auth.check_oauth_token(grant.access_token) is None
    assert call_mcp(portal, grant.access_token).status_code == 401
    assert app_tokens()[0] == []
    assert all(r.revoked is not None for r in app_tokens()[1])
    refreshed = httpx.post(
        f"{portal}/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": grant.refresh_token,
            "client_id": grant.client_id,
        },
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"

    again = client.post(APPS, {**selected, "apply": "1", "reason": "Lost laptop"}, follow=True)
    assert "Revoked 0 connected apps." in again.text
    assert ApiKeyEvent.objects.filter(kind=ApiKeyEvent.Kind.APP_REVOKED).count() == 1


def test_client_admin_lists_registered_clients(portal, client, staff, alice, alice_connection):
    grant = connect_app(portal, "alice", client_name="ChatGPT")
    client.force_login(staff)

    page = client.get(CLIENTS)

    assert page.status_code == 200
    assert "ChatGPT" in page.text
    assert Application.objects.get().registration_source == "dcr"
    change = client.get(f"{CLIENTS}{Application.objects.get().pk}/change/")
    assert grant.client_id in change.text
    for secret in grant.secrets:
        assert secret not in change.text


def test_deleting_a_client_in_the_admin_removes_its_apps_and_tokens(
    portal, client, staff, alice, alice_connection
):
    grant = connect_app(portal, "alice", client_name="Cursor")
    other = connect_app(portal, "alice", client_name="VS Code")
    doomed = Application.objects.get(client_id=grant.client_id)
    client.force_login(staff)

    confirm = client.get(f"{CLIENTS}{doomed.pk}/delete/")
    assert confirm.status_code == 200
    assert "permission to delete" not in confirm.text, confirm.text
    for secret in grant.secrets:
        assert secret not in confirm.text

    deleted = client.post(f"{CLIENTS}{doomed.pk}/delete/", {"post": "yes"}, follow=True)

    assert deleted.status_code == 200
    assert not Application.objects.filter(client_id=grant.client_id).exists()
    assert [a.client_name for a in ConnectedApp.objects.all()] == ["VS Code"]
    assert not AccessToken.objects.filter(application=doomed.pk).exists()
    assert not RefreshToken.objects.filter(application=doomed.pk).exists()
    assert auth.check_oauth_token(grant.access_token) is None
    assert auth.check_oauth_token(other.access_token) is not None
    # The audit trail keeps what happened, and to which client.
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.APP_REVOKED)
    assert event.actor == staff and event.detail["client_id"] == grant.client_id


# --- What else revokes an app -------------------------------------------------------------


def test_deactivating_a_user_revokes_their_connected_apps(
    portal, staff, alice, alice_connection, bob, make_connection
):
    grant = connect_app(portal, "alice")
    bobs = connect_app(portal, "bob", connection=make_connection(bob, "globex"))
    assert auth.check_oauth_token(grant.access_token) is not None

    deactivate_user(alice, by=staff)

    app = ConnectedApp.objects.get(user=alice)
    assert app.revoked_at is not None and app.revoked_reason == "user deactivated"
    assert ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.APP_REVOKED).connected_app == app
    assert auth.check_oauth_token(grant.access_token) is None
    assert not AccessToken.objects.filter(user=alice).exclude(scope=REGISTRATION_SCOPE).exists()
    assert auth.check_oauth_token(bobs.access_token) is not None


def test_disconnecting_the_workspace_revokes_the_apps_on_it(
    portal, client, alice, alice_connection, make_connection
):
    globex = make_connection(alice, "globex")
    on_acme = connect_app(portal, "alice", connection=alice_connection)
    on_globex = connect_app(portal, "alice", connection=globex)
    client.force_login(alice)

    response = client.post(reverse("connections:disconnect", args=[alice_connection.pk]))

    assert response.status_code == 302
    acme_app = ConnectedApp.objects.get(connection=alice_connection)
    assert acme_app.revoked_at is not None
    assert acme_app.revoked_reason == "connection disconnected"
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.APP_REVOKED)
    assert event.connected_app == acme_app and event.actor == alice
    assert auth.check_oauth_token(on_acme.access_token) is None
    assert auth.check_oauth_token(on_globex.access_token) is not None
    assert ConnectedApp.objects.get(connection=globex).revoked_at is None


# --- No token anywhere readable -----------------------------------------------------------


def every_logger_at_debug(caplog) -> None:
    """LOG_LEVEL=DEBUG, and every logger at DEBUG but those whose level settings.LOGGING
    sets whatever LOG_LEVEL says: that is what a portal at LOG_LEVEL=DEBUG logs. (Among
    those, httpx and httpcore are the test's own HTTP client's too; at DEBUG they log the
    response headers it gets, the redirect carrying the code among them.)"""
    pinned = [name for name, config in settings.LOGGING["loggers"].items() if "level" in config]
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if not any(name == p or name.startswith(f"{p}.") for p in pinned):
            caplog.set_level(logging.DEBUG, logger=name)


def test_no_token_code_or_registration_token_in_logs_reprs_or_the_database(
    portal, caplog, alice, alice_connection
):
    every_logger_at_debug(caplog)

    grant = connect_app(portal, "alice", access="read_write")
    assert call_mcp(portal, grant.access_token).status_code == 200
    whoami = call_mcp(portal, grant.access_token, "tools/call", {"name": "whoami"})
    assert whoami.status_code == 200 and "Acme" in whoami.text
    # Refresh (rotating), then replay the old refresh token: refused.
    refresh = {"grant_type": "refresh_token", "client_id": grant.client_id}
    rotated = httpx.post(
        f"{portal}/oauth/token/", data={**refresh, "refresh_token": grant.refresh_token}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    replayed = httpx.post(
        f"{portal}/oauth/token/", data={**refresh, "refresh_token": grant.refresh_token}
    )
    assert replayed.status_code == 400
    # The code again: refused, and what it authorized is revoked.
    code_again = httpx.post(
        f"{portal}/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": grant.code,
            "redirect_uri": LOOPBACK_REDIRECT,
            "client_id": grant.client_id,
            "code_verifier": grant.code_verifier,
        },
    )
    assert code_again.status_code == 400
    # The client reads its registration, and a second app is approved and revoked.
    management = httpx.get(
        f"{portal}/oauth/register/{grant.client_id}/",
        headers={"Authorization": f"Bearer {grant.registration_access_token}"},
    )
    assert management.status_code == 200
    second = connect_app(portal, "alice")
    revoked = httpx.post(
        f"{portal}/oauth/revoke/",
        data={"token": second.refresh_token, "client_id": second.client_id},
    )
    assert revoked.status_code == 200
    assert call_mcp(portal, second.access_token).status_code == 401

    issued = [
        *grant.secrets,
        *second.secrets,
        new["access_token"],
        new["refresh_token"],
        grant.code_verifier,
        second.code_verifier,
    ]
    assert caplog.records  # the flow logged something
    assert leaks(log_text(caplog.records), issued) == []
    assert leaks(every_table_dump(), issued) == []
    assert AccessToken.objects.exists() and RefreshToken.objects.exists()
    assert all(t.token == "" for t in AccessToken.objects.all())
    assert all(t.token == "" for t in RefreshToken.objects.all())
    assert not Grant.objects.exists()  # codes live only until they are exchanged
    rows = [
        *AccessToken.objects.all(),
        *RefreshToken.objects.all(),
        *ConnectedApp.objects.all(),
        *Application.objects.all(),
    ]
    shown = "\n".join(f"{row!s} {row!r}" for row in rows)
    assert leaks(shown, issued) == []
    assert "Portal test client for Acme" in shown


# --- The dashboard ------------------------------------------------------------------------


def connected_apps_table(page: str) -> str:
    """The rows of the dashboard's Connected apps table ("" when it has none)."""
    section = page[page.index("<h2>Connected apps</h2>") :]
    if "<tbody>" not in section:
        return ""
    return section[section.index("<tbody>") : section.index("</tbody>")]


def test_dashboard_shows_the_owner_their_connected_apps_only(
    portal, client, alice, alice_connection, bob, make_connection
):
    connect_app(portal, "alice", client_name="Claude for Alice", access="read_write")
    connect_app(
        portal, "bob", client_name="Assistant of Bob", connection=make_connection(bob, "globex")
    )
    alices, bobs = ConnectedApp.objects.get(user=alice), ConnectedApp.objects.get(user=bob)

    client.force_login(alice)
    page = client.get(reverse("dashboard")).text
    rows = connected_apps_table(page)

    assert "Claude for Alice" in rows and "Acme" in rows and "read-write" in rows
    assert reverse("mcp_gateway:app-revoke", args=[alices.pk]) in rows
    assert "Assistant of Bob" not in page and "Globex" not in page
    assert reverse("mcp_gateway:app-revoke", args=[bobs.pk]) not in page


def test_revoke_on_the_dashboard_ends_the_apps_access(portal, client, alice, alice_connection):
    grant = connect_app(portal, "alice", client_name="Claude")
    app = ConnectedApp.objects.get()
    client.force_login(alice)

    response = client.post(reverse("mcp_gateway:app-revoke", args=[app.pk]), follow=True)

    assert "Revoked “Claude”. Its access ends at once." in response.text
    app.refresh_from_db()
    assert app.revoked_at is not None
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.APP_REVOKED)
    assert event.actor == alice and str(event.ip_address) == "127.0.0.1"
    assert auth.check_oauth_token(grant.access_token) is None
    assert connected_apps_table(response.text) == ""
    assert "No connected apps." in response.text


def test_revoking_another_users_app_is_not_found(portal, client, alice, alice_connection, charlie):
    grant = connect_app(portal, "alice")
    app = ConnectedApp.objects.get()
    client.force_login(charlie)

    response = client.post(reverse("mcp_gateway:app-revoke", args=[app.pk]))

    assert response.status_code == 404
    app.refresh_from_db()
    assert app.revoked_at is None
    assert auth.check_oauth_token(grant.access_token) is not None


def test_app_revoke_is_post_only(client, alice):
    client.force_login(alice)
    assert client.get(reverse("mcp_gateway:app-revoke", args=[1])).status_code == 405


# --- Production settings ------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://portal.example.com", "http://10.0.0.5:8000"])
def test_production_refuses_a_plain_http_portal_base_url(url):
    result = run_django(["check"], {"PORTAL_BASE_URL": url})

    assert result.returncode != 0
    assert "PORTAL_BASE_URL is not an https:// URL" in result.stderr


def issuer_and_resource(portal_base_url: str):
    show = (
        "from django.conf import settings; o = settings.OAUTH2_PROVIDER; "
        "print(o['OIDC_ISS_ENDPOINT'], o['OAUTH2_PROTECTED_RESOURCE_IDENTIFIER'])"
    )
    return run_django(["shell", "--no-imports", "-c", show], {"PORTAL_BASE_URL": portal_base_url})


def test_production_builds_the_issuer_and_resource_from_an_https_portal_base_url():
    result = issuer_and_resource("https://mcp.example.org/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["https://mcp.example.org", "https://mcp.example.org/mcp"]


def test_production_accepts_plain_http_on_loopback_only():
    """A production-like run on one machine (the benchmarks, the fault tests)."""
    result = issuer_and_resource("http://127.0.0.1:8000")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:8000", "http://127.0.0.1:8000/mcp"]


def test_check_deploy_reports_nothing_from_oauth2_provider():
    result = run_django(["check", "--deploy", "--fail-level", "WARNING"], {})

    assert result.returncode == 0, result.stderr
    assert "oauth2_provider" not in result.stdout + result.stderr


def test_the_only_oauth2_provider_deploy_finding_is_the_silenced_w008(settings):
    """W008 (http among the redirect schemes) is silenced for loopback redirect URIs; every
    other RFC 9700 check of the toolkit passes on its own."""
    settings.SILENCED_SYSTEM_CHECKS = []

    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])

    assert {m.id for m in found if m.id.startswith("oauth2_provider.")} == {"oauth2_provider.W008"}


def test_cimd_over_loopback_http_refuses_to_start_with_debug_off():
    result = run_django(["check"], {"OAUTH_CIMD_LOOPBACK_HTTP": "true"})

    assert result.returncode != 0
    assert "OAUTH_CIMD_LOOPBACK_HTTP is for development and tests only" in result.stderr

"""The MCP SDK's own OAuth client against the portal over real HTTP: discovery, dynamic
registration, sign-in and consent on the portal's pages, tools, refresh, revocation."""

import time

import httpx2
from asgiref.sync import async_to_sync, sync_to_async
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from oauth2_provider.models import AccessToken, Application, RefreshToken

from mcp_gateway import services
from mcp_gateway.models import ApiKeyEvent, ConnectedApp, ToolCall

from .oauth_flow import LOOPBACK_REDIRECT, Person, client_metadata_document


class Memory:
    """The SDK's TokenStorage, in memory (what a client keeps between runs)."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def sdk_client(
    base: str,
    person: Person,
    storage: Memory,
    *,
    access: str = "read_only",
    step_up=None,
    client_metadata_url: str | None = None,
) -> OAuthClientProvider:
    """The SDK's OAuth client, with `person` approving at the portal: `access` the first
    time, `step_up` (if given) when the client asks again for more."""
    answers: list[dict] = []
    choices = [access] + ([step_up] if step_up else [])

    async def redirect_handler(url: str) -> None:
        answers.append(await person.approve(url, access=choices.pop(0)))

    async def callback_handler() -> AuthorizationCodeResult:
        answer = answers.pop()
        return AuthorizationCodeResult(
            code=answer["code"], state=answer["state"], iss=answer["iss"]
        )

    return OAuthClientProvider(
        server_url=f"{base}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[LOOPBACK_REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )


async def with_tools(base: str, auth, body):
    http = httpx2.AsyncClient(auth=auth, timeout=30)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        return await body(client)


def test_the_sdk_client_registers_signs_in_and_calls_tools(
    portal, alice, alice_connection, staff, client
):
    storage = Memory()
    person = Person(portal, "alice")

    async def body(client):
        names = {t.name for t in (await client.list_tools()).tools}
        whoami = await client.call_tool("whoami", {})
        return names, whoami

    async def run():
        try:
            return await with_tools(portal, sdk_client(portal, person, storage), body)
        finally:
            await person.close()

    names, whoami = async_to_sync(run)()
    # Read-only was preselected and kept: only reads are listed.
    assert "whoami" in names and "search_records" in names
    assert "create_note" not in names and "delete_record" not in names
    assert not whoami.is_error
    assert whoami.structured_content["workspace_name"] == "Acme"
    assert whoami.structured_content["oauth_client"] == "SDK test client"
    assert whoami.structured_content["read_only"] is True
    assert whoami.structured_content["api_key"] is None

    # Registered dynamically, approved once; its token is stored only as a checksum.
    registered = Application.objects.get()
    assert registered.registration_source == "dcr" and registered.client_type == "public"
    app = ConnectedApp.objects.get()
    assert app.client == registered and app.connection == alice_connection and app.read_only
    assert app.last_used_at is not None
    token = AccessToken.objects.exclude(scope="oauth2_provider:registration").get()
    assert token.token == "" and len(token.token_checksum) == 64
    assert token.resource == [f"{portal}/mcp"]
    assert storage.tokens.access_token not in repr(token)
    # The audit trail says which app made each call (written a moment after the call).
    deadline = time.monotonic() + 5
    while not ToolCall.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    calls = ToolCall.objects.filter(connected_app=app)
    assert {c.tool for c in calls} >= {"whoami"} and not calls.filter(api_key__isnull=False)
    client.force_login(staff)
    listed = client.get("/admin/mcp_gateway/toolcall/").content.decode()
    assert "OAuth app SDK test client" in listed
    assert ApiKeyEvent.objects.filter(kind=ApiKeyEvent.Kind.APP_AUTHORIZED, connected_app=app)


def test_read_and_write_when_the_user_chooses_it(portal, alice, alice_connection):
    person = Person(portal, "alice")

    async def body(client):
        return {t.name for t in (await client.list_tools()).tools}

    async def run():
        try:
            auth = sdk_client(portal, person, Memory(), access="read_write")
            return await with_tools(portal, auth, body)
        finally:
            await person.close()

    names = async_to_sync(run)()
    assert {"whoami", "create_note", "delete_record"} <= names
    assert ConnectedApp.objects.get().read_only is False


def test_refresh_rotates_and_revocation_refuses_the_next_call(portal, alice, alice_connection):
    storage = Memory()
    person = Person(portal, "alice")

    async def whoami(client):
        return await client.call_tool("whoami", {})

    async def run():
        auth = sdk_client(portal, person, storage)
        try:
            first = await with_tools(portal, auth, whoami)
            old_refresh = storage.tokens.refresh_token
            # The access token has expired: the SDK refreshes before its next request.
            await sync_to_async(expire_access_tokens)()
            auth.context.token_expiry_time = time.time() - 1
            second = await with_tools(portal, auth, whoami)
            new_refresh = storage.tokens.refresh_token
            return first, old_refresh, second, new_refresh
        finally:
            await person.close()

    first, old_refresh, second, new_refresh = async_to_sync(run)()
    assert not first.is_error and not second.is_error
    assert new_refresh != old_refresh  # rotated
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1
    assert ConnectedApp.objects.count() == 1  # the same app, refreshed, not approved again

    # Revoked from the dashboard: the very next request is refused.
    app = ConnectedApp.objects.get()
    services.revoke_connected_app(app, by=alice)
    answer = httpx2.post(
        f"{portal}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {storage.tokens.access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert answer.status_code == 401
    assert 'scope="attio.read attio.write"' in answer.headers["www-authenticate"]
    assert "resource_metadata=" in answer.headers["www-authenticate"]
    assert not AccessToken.objects.exclude(scope="oauth2_provider:registration").exists()


def expire_access_tokens() -> None:
    from django.utils import timezone

    AccessToken.objects.update(expires=timezone.now())


def test_a_write_asked_of_a_read_only_grant_steps_up_to_read_write(
    portal, alice, alice_connection, fake_attio
):
    """The 403 insufficient_scope makes the SDK ask again; the user chooses read and
    write this time, and the call goes through."""
    person = Person(portal, "alice")
    record_id = fake_attio.record_id("people", "Ada Lovelace", workspace="acme")

    async def body(client):
        return await client.call_tool(
            "create_note",
            {
                "parent_object": "people",
                "parent_record_id": record_id,
                "title": "Call",
                "content": "Spoke today",
            },
        )

    async def run():
        try:
            auth = sdk_client(portal, person, Memory(), step_up="read_write")
            return await with_tools(portal, auth, body)
        finally:
            await person.close()

    result = async_to_sync(run)()
    assert not result.is_error, result.content
    apps = ConnectedApp.objects.order_by("pk")
    assert [a.read_only for a in apps] == [True, False]


def test_the_sdk_client_with_a_client_id_metadata_document(
    portal, alice, alice_connection, settings
):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "CIMD_METADATA_FETCHER": "mcp_gateway.oauth_server.LoopbackHttpMetadataFetcher",
    }
    person = Person(portal, "alice")
    document = {
        "client_name": "CIMD test client",
        "redirect_uris": [LOOPBACK_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }

    async def whoami(client):
        return await client.call_tool("whoami", {})

    with client_metadata_document(**document) as client_id:

        async def run():
            try:
                auth = sdk_client(portal, person, Memory(), client_metadata_url=client_id)
                return await with_tools(portal, auth, whoami)
            finally:
                await person.close()

        result = async_to_sync(run)()

    assert not result.is_error
    assert result.structured_content["oauth_client"] == "CIMD test client"
    # No registration: the client is its metadata document, kept with its origin.
    client = Application.objects.get()
    assert client.client_id == client_id and client.registration_source == "cimd"
    assert ConnectedApp.objects.get().client == client

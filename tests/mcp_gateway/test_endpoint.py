"""The /mcp endpoint: authentication, metadata, and the first tools over real MCP."""

import time

import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway.models import ToolCall

from .in_thread import gateway_in_a_thread

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


def test_whoami_through_the_sdk_client(mcp, alice_key, fake_attio):
    key, plaintext = alice_key

    async def body(client):
        tools = await client.list_tools()
        result = await client.call_tool("whoami", {})
        return tools, result

    tools, result = mcp(plaintext, body)
    assert "whoami" in [t.name for t in tools.tools]
    assert not result.is_error
    data = result.structured_content
    assert data["workspace_name"] == "Acme"
    assert data["portal_user"] == "alice"
    assert data["api_key"] == key.display_id
    assert plaintext not in str(result)
    call = ToolCall.objects.get()
    assert (call.tool, call.ok, call.attio_status) == ("whoami", True, 200)
    # The fake saw Alice's Attio token, never the portal key.
    seen = fake_attio.last("self").headers["authorization"]
    assert seen == f"Bearer {key.connection.access_token()}"


def test_unauthenticated_request_gets_401_with_resource_metadata(raw, db):
    response = raw("POST", "/mcp", json=INITIALIZE, headers=JSON)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert (
        'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'
        in challenge
    )


def test_protected_resource_metadata_is_served(raw, db):
    response = raw("GET", "/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json()["resource"] == "http://127.0.0.1:8000/mcp"


@pytest.mark.parametrize(
    "presented",
    ["nonsense", "attp_short", "Bearer", "attp_" + "A" * 12 + "_" + "B" * 49],
)
def test_malformed_keys_get_401(raw, db, presented):
    headers = {**JSON, "Authorization": f"Bearer {presented}"}
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 401


def test_key_in_query_string_is_refused(raw, alice_key):
    _, plaintext = alice_key
    response = raw("POST", f"/mcp?api_key={plaintext}", json=INITIALIZE, headers=JSON)
    assert response.status_code == 400
    assert "Authorization header" in response.json()["error_description"]


def test_tool_descriptions_are_clean_text(mcp, alice_key):
    _, plaintext = alice_key

    async def body(client):
        return await client.list_tools()

    tools = mcp(plaintext, body).tools
    assert len(tools) >= 29
    for tool in tools:
        assert tool.description and not tool.description.startswith((" ", "\n"))
        assert "\n    " not in tool.description, tool.name


def other_sessions_on_the_test_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_a_stopped_gateway_leaves_no_database_connection_open(gateway, alice_key):
    _, plaintext = alice_key

    async def whoami(base_url):
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {plaintext}"}, timeout=30)
        async with http, Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as c:
            return await c.call_tool("whoami", {})

    with gateway_in_a_thread() as base_url:
        assert not async_to_sync(whoami)(base_url).is_error
        # The key checks' pool, and the ORM thread that writes the audit trail.
        assert other_sessions_on_the_test_database() >= 1
    deadline = time.monotonic() + 5
    while other_sessions_on_the_test_database() and time.monotonic() < deadline:
        time.sleep(0.05)  # a backend ends a moment after its client hangs up
    assert other_sessions_on_the_test_database() == 0
    assert ToolCall.objects.get().tool == "whoami"  # written before it stopped

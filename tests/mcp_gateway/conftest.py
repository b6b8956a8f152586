"""Fixtures for the MCP gateway: API keys, the SDK's own client over in-process HTTP, and
the whole portal on a loopback port (`portal`)."""

import contextlib

import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.db import DEFAULT_DB_ALIAS
from django.db import connections as db_connections
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from attio_portal.asgi import dispatcher
from connections import attio
from mcp_gateway.models import ApiKey
from mcp_gateway.server import build_server, gateway_app

from ..faults.harness import free_port
from .in_thread import gateway_in_a_thread
from .oauth_flow import portal_at

MCP_URL = "http://127.0.0.1:8000/mcp"


@pytest.fixture
def gateway(fake_attio, monkeypatch, transactional_db):
    """A fresh gateway app (the SDK's session manager runs once per instance).

    Tests that use it commit their rows: on PostgreSQL the gateway checks keys on
    connections of its own (PostgresCredentialChecks), which see committed rows only.
    """
    monkeypatch.setattr(attio, "async_transport", fake_attio.async_transport())
    attio._async_clients.clear()
    server = build_server()
    return server, dispatcher(gateway_app(server))


@pytest.fixture
def make_key():
    def make_key(connection, **options):
        options.setdefault("name", "test key")
        return ApiKey.objects.issue(connection.owner, connection=connection, **options)

    return make_key


@pytest.fixture
def alice_key(alice_connection, make_key):
    """Alice's read-write key and its plaintext."""
    return make_key(alice_connection)


@contextlib.asynccontextmanager
async def http_client(app, headers: dict | None = None):
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://127.0.0.1:8000",
        headers=headers or {},
        timeout=30,
    ) as http:
        yield http


@pytest.fixture
def mcp(gateway):
    """Run `body(client)` against the gateway with an MCP client using `key`.

    Driven through async_to_sync, so the ORM calls the gateway makes run on this test's
    thread, with its database connection.
    """
    server, app = gateway

    def run(key: str | None, body, *, mode: str = "legacy"):
        async def go():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            async with server.session_manager.run(), http_client(app, headers) as http:
                transport = streamable_http_client(MCP_URL, http_client=http)
                async with Client(transport, mode=mode) as client:
                    return await body(client)

        return async_to_sync(go)()

    return run


@pytest.fixture
def raw(gateway):
    """Send one raw HTTP request to the gateway app; returns the httpx2 response."""

    def send(method: str, path: str, **kwargs):
        # A fresh server each time: the SDK's session manager runs once per instance.
        server = build_server()
        app = dispatcher(gateway_app(server))

        async def go():
            async with server.session_manager.run(), http_client(app) as http:
                return await http.request(method, path, **kwargs)

        return async_to_sync(go)()

    return send


# --- For the tool tests (tests/mcp_gateway/test_tools_*.py) ---------------------------------


@pytest.fixture
def run_tools(mcp):
    """Call tools in one MCP session: `run_tools(key, ("name", {args}), ...)` -> results.

    One session per test: the gateway's session manager runs once per instance.
    """

    def run(key: str, *calls: tuple[str, dict]):
        async def body(client):
            return [await client.call_tool(name, arguments) for name, arguments in calls]

        return mcp(key, body)

    return run


@pytest.fixture
def call_tool(run_tools):
    """Call one tool: `call_tool(key, "name", {args})` -> its result."""

    def call(key: str, name: str, arguments: dict | None = None):
        return run_tools(key, (name, arguments or {}))[0]

    return call


# Tool.from_function results, by function and options (see `tools_built_once`).
_BUILT_TOOLS: dict = {}


@pytest.fixture
def tools_built_once(monkeypatch):
    """Build each tool's schemas once per test run instead of once per gateway.

    Deriving the pydantic schemas of ~30 tools is most of what a fresh gateway costs, and
    they depend only on the tool functions, so the gateway of each test reuses them.
    """
    from mcp.server.mcpserver.tools.base import Tool

    build = Tool.from_function

    def from_function(fn, **options):
        key = (fn, repr(sorted(options.items())))
        if key not in _BUILT_TOOLS:
            _BUILT_TOOLS[key] = build(fn, **options)
        return _BUILT_TOOLS[key]

    monkeypatch.setattr(Tool, "from_function", staticmethod(from_function))


@pytest.fixture
def attio_calls_follow_spec(tools_built_once, fake_attio, monkeypatch):
    """Every /v2 request the gateway sends must satisfy Attio's OpenAPI document.

    Also gives each test a fresh per-key rate limiter and attribute-slug cache, since
    SQLite reuses key ids from test to test.
    """
    from mcp_gateway import policy
    from mcp_gateway.tools import _call
    from tests.fake_attio import spec

    monkeypatch.setattr(policy, "rate_limiter", policy.RateLimiter())
    _call.ATTRIBUTE_SLUGS.clear()
    yield
    _call.ATTRIBUTE_SLUGS.clear()
    assert fake_attio.spec_violations == []
    for call in fake_attio.calls:
        if call.path.startswith("/v2/"):
            # Faulted calls skip the fake's own check, so check every call here too.
            spec.validate_request(call.method, call.path, call.query, call.json)


def tool_text(result) -> str:
    """The text of a tool result (the error message, for an error)."""
    return " ".join(block.text for block in result.content if block.type == "text")


def ok(result) -> dict:
    """The structured content of a tool result that must have succeeded."""
    assert not result.is_error, tool_text(result)
    return result.structured_content


@pytest.fixture
def key(alice_key):
    """Alice's read-write key, as the tool tests use it."""
    return alice_key[1]


@pytest.fixture
def acme(fake_attio):
    """The fake's `acme` workspace, alice's."""
    return fake_attio.store("acme")


@pytest.fixture
def portal(gateway, settings):
    """The whole portal (its pages, the OAuth server and /mcp) served on a loopback port
    in a thread, its public URL (issuer, resource) pointing there."""
    port = free_port()
    portal_at(settings, f"http://127.0.0.1:{port}")
    # Its pages run in threads of the server's own; with persistent connections those
    # would outlive the test and hold its database open at teardown.
    database = db_connections.settings[DEFAULT_DB_ALIAS]
    kept, database["CONN_MAX_AGE"] = database["CONN_MAX_AGE"], 0
    try:
        with gateway_in_a_thread(port) as base:
            yield base
    finally:
        database["CONN_MAX_AGE"] = kept

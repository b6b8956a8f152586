"""Builds the MCP server: API-key auth, per-key policy, the tools, and the ASGI app."""

import logging
import time
from collections import defaultdict, deque

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from connections import attio

from . import auth, tools
from .models import ApiKey, ToolCall

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Tools for the user's own Attio CRM workspace, reached through their Attio Portal "
    "connection. Start with `whoami` to see the workspace and what this key may do, and "
    "`list_objects` / `list_attributes` before writing records: values use Attio's shapes "
    "keyed by attribute slug."
)


def mcp_url() -> str:
    return f"{settings.PORTAL_BASE_URL}/mcp"


class ApiKeyVerifier:
    """The SDK's TokenVerifier, backed by portal API keys."""

    async def verify_token(self, token: str) -> AccessToken | None:
        key = await auth.authenticate(token)
        if key is None:
            return None
        now = timezone.now()
        # At most one write a minute per key, whatever the traffic.
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
            await ApiKey.objects.filter(pk=key.pk).aupdate(last_used_at=now)
        return AccessToken(
            token=token,
            client_id=f"api-key:{key.public_id}",
            scopes=["attio:read"] if key.read_only else ["attio:read", "attio:write"],
            expires_at=int(key.expires_at.timestamp()) if key.expires_at else None,
            resource=mcp_url(),
            subject=str(key.owner_id),
            claims={"api_key": key},
        )


class RateLimiter:
    """Calls per key per minute, a sliding window kept in this worker process."""

    def __init__(self) -> None:
        self.calls: dict[int, deque[float]] = defaultdict(deque)

    def retry_after(self, key_id: int, limit: int) -> float | None:
        """None if the call may go ahead, else the seconds until it may."""
        now = time.monotonic()
        window = self.calls[key_id]
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return 60 - (now - window[0])
        window.append(now)
        return None


rate_limiter = RateLimiter()


def error_result(text: str) -> dict:
    return {"content": [{"type": "text", "text": text}], "isError": True}


async def gateway_policy(ctx, call_next):
    """Per-key policy around every MCP request: tool visibility, limits, audit."""
    if ctx.method == "tools/list":
        result = await call_next(ctx)
        if tools.current_key().read_only:
            result["tools"] = [
                t for t in result.get("tools", []) if tools.is_read_only(t.get("name"))
            ]
        return result
    if ctx.method != "tools/call":
        return await call_next(ctx)

    key = tools.current_key()
    name = str((ctx.params or {}).get("name", ""))[:64]
    started = time.monotonic()
    log = attio.CallLog()
    token = attio.call_log.set(log)
    error_code = ""
    try:
        if key.read_only and tools.exists(name) and not tools.is_read_only(name):
            error_code = "read_only_key"
            result = error_result(
                f"This API key is read-only, so it cannot call `{name}`. Create a "
                f"read-write key at {settings.PORTAL_BASE_URL}/ to make changes."
            )
        elif wait := rate_limiter.retry_after(key.pk, settings.MCP_RATE_LIMIT_PER_MINUTE):
            error_code = "rate_limited"
            result = error_result(
                f"Too many calls with this API key (limit: {settings.MCP_RATE_LIMIT_PER_MINUTE}"
                f" a minute). Wait {wait:.0f} seconds and try again."
            )
        else:
            result = await call_next(ctx)
            if result.get("isError"):
                error_code = log.error_code or "tool_error"
    finally:
        attio.call_log.reset(token)
    await ToolCall.objects.acreate(
        owner_id=key.owner_id,
        api_key_id=key.pk,
        connection_id=key.connection_id,
        tool=name,
        ok=not result.get("isError", False),
        attio_status=log.status,
        error_code=error_code[:64],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return result


def build_server() -> MCPServer:
    server = MCPServer(
        name="attio-portal",
        title="Attio (via Attio Portal)",
        instructions=INSTRUCTIONS,
        version="1.0",
        token_verifier=ApiKeyVerifier(),
        auth=AuthSettings(
            issuer_url=settings.PORTAL_BASE_URL,
            resource_server_url=mcp_url(),
            validate_token_resource=True,
            service_documentation_url=f"{settings.PORTAL_BASE_URL}/",
        ),
        log_level="WARNING",
        middleware=[gateway_policy],
    )
    tools.register(server)
    return server


def build_app(server: MCPServer):
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=settings.MCP_ALLOWED_HOSTS,
            allowed_origins=settings.MCP_ALLOWED_ORIGINS,
        ),
        max_request_body_size=settings.MCP_MAX_REQUEST_BYTES,
    )


def close_stale_database_connections() -> None:
    # No Django request cycle runs around MCP requests, so do its connection upkeep here
    # (as close_old_connections does): drop connections past CONN_MAX_AGE or broken.
    # A connection inside a transaction (a test's) is left alone.
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


async def refresh_database_connections() -> None:
    await sync_to_async(close_stale_database_connections)()


QUERY_REFUSED = (
    b'{"error": "invalid_request", "error_description": "Send the API key in the '
    b'Authorization header (Bearer); /mcp takes no query parameters."}'
)


METHOD_REFUSED = (
    b'{"error": "method_not_allowed", "error_description": "This MCP endpoint answers '
    b'POST requests with JSON; it offers no event stream."}'
)


async def respond(send, status: int, body: bytes, *, allow: bytes | None = None) -> None:
    headers = [(b"content-type", b"application/json")]
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def gateway_app(server: MCPServer):
    """The ASGI app for /mcp and its metadata, with the portal's own checks around it."""
    app = build_app(server)

    async def gateway(scope, receive, send):
        if scope["type"] == "http":
            on_endpoint = scope["path"].startswith("/mcp")
            # Keys belong in the Authorization header: a key in a URL ends up in logs
            # and browser history, so a query string is refused outright.
            if on_endpoint and scope.get("query_string"):
                return await respond(send, 400, QUERY_REFUSED)
            # Stateless JSON mode has no server-to-client stream to open; the spec's
            # answer to such a GET is 405 (an SSE stream here would just hang).
            if on_endpoint and scope["method"] == "GET":
                return await respond(send, 405, METHOD_REFUSED, allow=b"POST")
            await refresh_database_connections()
        await app(scope, receive, send)

    return gateway

"""Builds the MCP server: API-key auth, per-key policy, the tools, and the ASGI app."""

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import defaultdict, deque
from contextvars import ContextVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, transaction
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError
from starlette.responses import JSONResponse, PlainTextResponse, Response

from connections import attio
from connections.models import Connection

from . import auth, tools
from .models import ApiKey, ToolCall

User = get_user_model()

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Tools for the user's own Attio CRM workspace, reached through their Attio Portal "
    "connection. Start with `whoami` to see the workspace and what this key may do, and "
    "`list_objects` / `list_attributes` before writing records: values use Attio's shapes "
    "keyed by attribute slug."
)


def mcp_url() -> str:
    return f"{settings.PORTAL_BASE_URL}/mcp"


class Refusal:
    """Why this request's key was refused, when the key check found that its holder may
    be told (auth.KeyRefused); the request's 401 then says so."""

    description: str | None = None


# The current request's Refusal: set by `gateway_app`, filled in by `ApiKeyVerifier`
# (which the SDK calls with the token only).
current_refusal: ContextVar[Refusal | None] = ContextVar("current_refusal", default=None)


class ApiKeyVerifier:
    """The SDK's TokenVerifier, backed by portal API keys."""

    def __init__(self, key_checks: auth.KeyChecks) -> None:
        self.key_checks = key_checks

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await self.key_checks.check(token)
        except auth.KeyRefused as refused:
            refusal = current_refusal.get()
            if refusal is not None:
                refusal.description = refused.description
            return None
        if key is None:
            return None
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
    """Events per key per minute, a sliding window kept in this worker process."""

    # Past this many keys, windows with nothing in the last minute are dropped.
    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self.calls: dict[int | str, deque[float]] = defaultdict(deque)

    def _window(self, key: int | str, now: float) -> deque[float]:
        window = self.calls[key]
        while window and window[0] <= now - 60:
            window.popleft()
        return window

    def retry_after(self, key: int | str, limit: int) -> float | None:
        """None if the call may go ahead (and counts it), else the seconds until it may."""
        now = time.monotonic()
        window = self._window(key, now)
        if len(window) >= limit:
            return 60 - (now - window[0])
        self.record(key)
        return None

    def exceeded(self, key: int | str, limit: int) -> bool:
        return len(self._window(key, time.monotonic())) >= limit

    def record(self, key: int | str) -> None:
        now = time.monotonic()
        if len(self.calls) > self.MAX_KEYS:
            for stale in [k for k, w in self.calls.items() if not w or w[-1] <= now - 60]:
                del self.calls[stale]
        self.calls[key].append(now)


rate_limiter = RateLimiter()


class AuditTrail:
    """The ToolCall rows of this worker, written in batches off the request path.

    One INSERT per call, awaited before answering, cost each call a thread hop, the ORM's
    save() and a commit waiting for the WAL flush: ~0.8 ms of CPU per call, and more of
    its latency when the disk is busy (bench/README.md, "Gateway"). Rows now wait here, in
    call order, and a background task writes them with one bulk INSERT every FLUSH_SECONDS.

    Still one row per tool call. Nothing is lost on a normal shutdown: the server's
    lifespan (uvicorn's, on SIGTERM; or the end of `session_manager.run()`) writes every
    pending row before it ends. If the worker dies without one (SIGKILL, OOM kill, power
    loss), the rows not yet written are lost: those of the last FLUSH_SECONDS, plus a
    write in progress (~0.5 s of calls at most). A write that fails (the database away)
    keeps its rows, in order, for the next attempt; a row the database refuses is written
    on its own, without its links if their rows were deleted, or dropped and logged.
    """

    FLUSH_SECONDS = 0.25
    BATCH = 500

    def __init__(self) -> None:
        self.pending: list[ToolCall] = []

    def add(self, **fields) -> None:
        # created_at is set now, when the call ends, as before.
        self.pending.append(ToolCall(**fields))

    async def flush(self) -> None:
        """Write the rows pending now; rows added meanwhile wait for the next flush.

        (Looping until none are pending would, under steady traffic, write a row or two
        per INSERT, one after the other: the per-call cost this class exists to avoid.)
        """
        rows, self.pending = self.pending, []
        if not rows:
            return
        try:
            await sync_to_async(self.write)(rows)
        except BaseException:
            # Not written (the database away): keep them, in order, for the next flush.
            self.pending[:0] = rows
            raise

    def write(self, rows: list[ToolCall]) -> None:
        auth.close_stale_database_connections()  # no request cycle does it here
        try:
            with transaction.atomic():
                ToolCall.objects.bulk_create(rows, batch_size=self.BATCH)
        except (DataError, IntegrityError):
            # A row the database refuses would hold back every row after it, at every
            # retry: write them one by one instead. (A lost connection is an
            # OperationalError and is retried whole.)
            for index, row in enumerate(rows):
                try:
                    self.write_one(row)
                except BaseException:
                    del rows[:index]  # written already: flush() keeps only the rest
                    raise

    def write_one(self, row: ToolCall) -> None:
        """Write one row; one the database refuses for good is dropped and logged."""
        try:
            self.insert(row)
        except IntegrityError:
            # Its key, user or connection may have been deleted since the call: keep the
            # record without the link, as the foreign keys' SET_NULL would have.
            for field, model in (
                ("owner_id", User),
                ("api_key_id", ApiKey),
                ("connection_id", Connection),
            ):
                if not model.objects.filter(pk=getattr(row, field)).exists():
                    setattr(row, field, None)
            try:
                self.insert(row)
            except (DataError, IntegrityError):
                self.drop(row)
        except DataError:
            self.drop(row)

    @staticmethod
    def insert(row: ToolCall) -> None:
        # An INSERT rolled back (the batch's, or the row's own) may have left its pk set.
        row.pk = None
        row._state.adding = True
        with transaction.atomic():
            row.save(force_insert=True)

    @staticmethod
    def drop(row: ToolCall) -> None:
        logger.error("Dropped a tool call record the database refused (tool %r)", row.tool)

    async def _flush_every_interval(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                logger.exception(
                    "Could not write %d tool call records; retrying", len(self.pending)
                )

    @contextlib.asynccontextmanager
    async def running(self):
        """Flush in the background while the server runs, and everything at the end."""
        stop = asyncio.Event()
        flusher = asyncio.create_task(self._flush_every_interval(stop))
        try:
            yield
        finally:
            stop.set()
            await flusher  # ends after its current write; never cancelled mid-write
            try:
                while self.pending:
                    await self.flush()
            except Exception:
                logger.exception("Lost %d tool call records at shutdown", len(self.pending))
                raise


audit_trail = AuditTrail()


def storable(text: str, limit: int) -> str:
    """`text` as a text column can hold it: at most `limit` characters and no NUL, which
    JSON can carry and PostgreSQL refuses. (The SDK's parser already refuses lone
    surrogates, the other thing a UTF-8 column can't hold.)"""
    return text.replace("\x00", "")[:limit]


def error_result(text: str) -> dict:
    """A tool error as the SDK puts it on the wire (clients validate the exact shape)."""
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


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
    name = storable(str((ctx.params or {}).get("name", "")), 64)
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
    audit_trail.add(
        owner_id=key.owner_id,
        api_key_id=key.pk,
        connection_id=key.connection_id,
        tool=name,
        ok=not result.get("isError", False),
        attio_status=log.status,
        error_code=storable(error_code, 64),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return result


def lifespan(key_checks: auth.KeyChecks):
    """The MCP server's lifespan: the key checks' connections and the audit trail's writer."""

    @contextlib.asynccontextmanager
    async def running(_server):
        try:
            async with key_checks.running(), audit_trail.running():
                yield {}
        finally:
            # Hang up the ORM thread's connections now rather than at the process's exit
            # (a server run in a thread, as some tests do, would leave them open).
            await sync_to_async(auth.close_database_connections)()

    return running


class GatewayServer(MCPServer):
    """The SDK's server, answering arguments that don't fit a tool in the portal's words."""

    async def call_tool(self, name: str, arguments: dict, context=None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            # The SDK raises a plain ToolError over pydantic's ValidationError when the
            # arguments don't fit the tool's signature, and puts its text on the wire.
            # Every other failure, and every call that succeeds, passes through as is.
            if type(e) is not ToolError or not isinstance(e.__cause__, ValidationError):
                raise
            message = tools.argument_errors(e.__cause__)
            # From the ValidationError still, which the SDK logs (field names only).
            raise ToolError(f"Error executing tool {name}: {message}") from e.__cause__


def build_server() -> MCPServer:
    key_checks = auth.key_checks()
    server = GatewayServer(
        name="attio-portal",
        title="Attio (via Attio Portal)",
        instructions=INSTRUCTIONS,
        version="1.0",
        token_verifier=ApiKeyVerifier(key_checks),
        auth=AuthSettings(
            issuer_url=settings.PORTAL_BASE_URL,
            resource_server_url=mcp_url(),
            validate_token_resource=True,
            service_documentation_url=f"{settings.PORTAL_BASE_URL}/",
        ),
        log_level="WARNING",
        middleware=[gateway_policy],
        lifespan=lifespan(key_checks),
    )
    tools.register(server)
    return server


def build_app(server: MCPServer):
    app = server.streamable_http_app(
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
    # The key check runs in the SDK's auth middleware, outside Starlette's per-route
    # exception handling: only the outermost (500) handler sees what it raises.
    app.add_exception_handler(Exception, server_error)
    return app


DATABASE_UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "The portal cannot check API keys right now (its database is not "
    "answering). Try again in a little while.",
}


async def server_error(request, exc: Exception) -> Response:
    """The answer to an unhandled error: 503 if the database is away, else a plain 500."""
    if isinstance(exc, auth.DatabaseUnavailable):
        return JSONResponse(DATABASE_UNAVAILABLE, status_code=503, headers={"Retry-After": "10"})
    return PlainTextResponse("Internal Server Error", status_code=500)


QUERY_REFUSED = (
    b'{"error": "invalid_request", "error_description": "Send the API key in the '
    b'Authorization header (Bearer); /mcp takes no query parameters."}'
)


METHOD_REFUSED = (
    b'{"error": "method_not_allowed", "error_description": "This MCP endpoint answers '
    b'POST requests with JSON; it offers no event stream."}'
)


async def respond(
    send, status: int, body: bytes, *, allow: bytes | None = None, retry_after: bytes | None = None
) -> None:
    headers = [(b"content-type", b"application/json")]
    if allow:
        headers.append((b"allow", allow))
    if retry_after:
        headers.append((b"retry-after", retry_after))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


TOO_MANY_FAILURES = (
    b'{"error": "too_many_failures", "error_description": "Too many requests with a '
    b'missing or wrong API key; wait a minute before trying again."}'
)


def failure_keys(scope) -> list[str]:
    """What repeated authentication failures are counted by: the client address and,
    for a well-formed key, its public id (so guessing one key's secret is slowed down
    from any number of addresses)."""
    keys = [f"ip:{(scope.get('client') or ('?',))[0]}"]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            presented = value.decode("latin-1").removeprefix("Bearer ").strip()
            public_id = auth.public_id_of(presented)
            if public_id:
                keys.append(f"key:{public_id}")
    return keys


def explained(start: dict, body: bytes, description: str) -> tuple[dict, bytes]:
    """The SDK's 401 (its start message and body), saying `description` instead of its
    generic error_description, in the WWW-Authenticate header and the JSON body alike.
    Everything else is kept: the same status, headers and fields as any other 401."""
    answer = json.loads(body)
    answer["error_description"] = description
    body = json.dumps(answer).encode()
    quoted = f'error_description="{description}"'.encode()
    headers = []
    for name, value in start["headers"]:
        if name == b"www-authenticate":
            value = re.sub(rb'error_description="[^"]*"', lambda _: quoted, value)
        elif name == b"content-length":
            value = str(len(body)).encode()
        headers.append((name, value))
    return {**start, "headers": headers}, body


def watch_unauthorized(send, on_failure, refusal: Refusal):
    """Wrap `send` to call `on_failure` when the answer is a 401, and to have that 401
    say why the key was refused when `refusal` has been filled in."""
    start = None
    body = b""

    async def watching_send(message):
        nonlocal start, body
        if message["type"] == "http.response.start" and message["status"] == 401:
            on_failure()
            if refusal.description is not None:
                start = message  # held back until the body is known: its length changes
                return
        if start is not None and message["type"] == "http.response.body":
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            answer_start, answer_body = explained(start, body, refusal.description)
            await send(answer_start)
            await send({"type": "http.response.body", "body": answer_body})
            return
        await send(message)

    return watching_send


def gateway_app(server: MCPServer):
    """The ASGI app for /mcp and its metadata, with the portal's own checks around it."""
    app = build_app(server)
    # Failed authentications per client address and per key id, in this worker.
    failures = RateLimiter()

    async def gateway(scope, receive, send):
        refusal = Refusal()
        if scope["type"] == "http":
            on_endpoint = scope["path"].startswith("/mcp")
            if on_endpoint:
                keys = failure_keys(scope)
                limit = settings.MCP_AUTH_FAILURES_PER_MINUTE
                if any(failures.exceeded(key, limit) for key in keys):
                    return await respond(send, 429, TOO_MANY_FAILURES, retry_after=b"60")
                send = watch_unauthorized(send, lambda: [failures.record(k) for k in keys], refusal)
            # Keys belong in the Authorization header: a key in a URL ends up in logs
            # and browser history, so a query string is refused outright.
            if on_endpoint and scope.get("query_string"):
                return await respond(send, 400, QUERY_REFUSED)
            # Stateless JSON mode has no server-to-client stream to open; the spec's
            # answer to such a GET is 405 (an SSE stream here would just hang).
            if on_endpoint and scope["method"] == "GET":
                return await respond(send, 405, METHOD_REFUSED, allow=b"POST")
        token = current_refusal.set(refusal)
        try:
            await app(scope, receive, send)
        except auth.DatabaseUnavailable:
            # Already answered 503 (server_error); a line per request, not a traceback.
            logger.warning("Answered 503: the database did not answer an API key check")
        finally:
            current_refusal.reset(token)

    return gateway

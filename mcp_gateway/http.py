"""The portal's HTTP checks around the SDK's /mcp app, before any key is checked.

In the order a request meets them: too many headers (431), more than one Authorization
header (400), repeated authentication failures from its client address (429), a query
string (400: keys go in the Authorization header), GET (405: no standalone event stream in
stateless mode). Then the SDK's app verifies the key (auth.py): a refused key's 401 says
why when its holder may be told, and a key the database could not check is answered 503
(`server_error`). The body size limit is the SDK's own (server.build_app passes
MCP_MAX_REQUEST_BYTES), applied after the key check, so a request without a good key
gets its 401 whatever its size.
"""

import asyncio
import contextvars
import ipaddress
import json
import logging
import re

from django.conf import settings
from mcp.server.streamable_http import check_accept_headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from . import auth, oauth_server
from .policy import RateLimiter

logger = logging.getLogger(__name__)


def guarded(app):
    """`app` (the SDK's ASGI app for /mcp and its metadata) with the portal's checks."""
    # Failed authentications per client address, in this worker.
    failures = RateLimiter()

    async def gateway(scope, receive, send):
        refusal = auth.Refusal()
        asked = None
        if scope["type"] == "http":
            on_endpoint = scope["path"].startswith("/mcp")
            if on_endpoint:
                headers = scope.get("headers", [])
                if len(headers) > MAX_HEADERS:
                    return await respond(send, 431, TOO_MANY_HEADERS)
                # The SDK reads the first Authorization header only; with several, what it
                # checks and what a reader (or a proxy) sees could differ, so none is read.
                if sum(name == b"authorization" for name, _ in headers) > 1:
                    return await respond(send, 400, SEVERAL_AUTHORIZATIONS)
                bucket = failure_bucket(scope)
                if failures.exceeded(bucket, settings.MCP_AUTH_FAILURES_PER_MINUTE):
                    return await respond(send, 429, TOO_MANY_FAILURES, retry_after=b"60")
                send = watch_unauthorized(send, lambda: failures.record(bucket), refusal)
            # Keys belong in the Authorization header: a key in a URL ends up in logs
            # and browser history, so a query string is refused outright.
            if on_endpoint and scope.get("query_string"):
                return await respond(send, 400, QUERY_REFUSED)
            # Stateless JSON mode has no server-to-client stream to open; the spec's
            # answer to such a GET is 405 (an SSE stream here would just hang).
            if on_endpoint and scope["method"] == "GET":
                return await respond(send, 405, METHOD_REFUSED, allow=b"POST")
            if on_endpoint and scope["method"] == "POST":
                receive, body = await body_within_deadline(receive)
                if receive is None:
                    return await respond(send, 408, BODY_TOO_SLOW)
                # Decided when the SDK makes the request's transport, after the key check
                # (server.StreamingWhenAsked): nothing is parsed for a request refused.
                asked = pending_post.set((scope, body))
        token = auth.refusal.set(refusal)
        try:
            await app(scope, receive, send)
        except auth.DatabaseUnavailable:
            # Already answered 503 (server_error); a line per request, not a traceback.
            logger.warning("Answered 503: the database did not answer an API key check")
        finally:
            auth.refusal.reset(token)
            if asked is not None:
                pending_post.reset(asked)

    return gateway


# This request's scope and body, while it is served: whether it is answered with an
# event stream is decided from them (asks_for_progress, by server.StreamingWhenAsked).
pending_post: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(
    "pending_post", default=None
)


def asks_for_progress(scope, body: bytes) -> bool:
    """Whether a POST carries a progress token (`params._meta.progressToken`) and its client
    takes an event stream. Only a stream has room for the progress notifications a long
    call (a bulk write) sends before its answer; every other POST gets the one JSON body,
    which costs less. The token is looked for in the bytes before any JSON is parsed, and
    the Accept header read as the SDK reads it."""
    if b"progressToken" not in body:
        return False
    if not check_accept_headers(Request(scope))[1]:
        return False
    try:
        message = json.loads(body)
        token = message["params"]["_meta"]["progressToken"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return False  # the SDK answers whatever is wrong with it
    return isinstance(token, (str, int)) and not isinstance(token, bool)


async def body_within_deadline(receive):
    """The request body read within MCP_BODY_TIMEOUT_SECONDS, handed on as `receive`
    would, and the bytes read; (None, b"") if it did not come in time. uvicorn waits for
    a body forever, so a client that sends it a byte at a time (or never) would hold a
    connection and its memory for as long as it likes. About MCP_MAX_REQUEST_BYTES at
    most is read here: the SDK refuses a larger body itself, after the key check (reading
    stops at the first message past that size; the SDK reads any rest itself)."""
    messages = []
    size = 0
    try:
        async with asyncio.timeout(settings.MCP_BODY_TIMEOUT_SECONDS):
            while True:
                message = await receive()
                if not isinstance(message, dict):
                    break
                messages.append(message)
                size += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
                if size > settings.MCP_MAX_REQUEST_BYTES:
                    break
    except TimeoutError:
        return None, b""
    buffered = iter(messages)

    async def replay():
        return next(buffered, None) or await receive()

    return replay, b"".join(m.get("body", b"") for m in messages)


TOO_MANY_FAILURES = (
    b'{"error": "too_many_failures", "error_description": "Too many requests with a '
    b'missing or wrong API key or token; wait a minute before trying again."}'
)

# Far more than any MCP client sends (a dozen or so). Every check of a header here and in
# the SDK walks the whole list, so its length is capped before any of them.
MAX_HEADERS = 100

TOO_MANY_HEADERS = (
    b'{"error": "invalid_request", "error_description": "Too many request headers; '
    b'/mcp accepts at most 100."}'
)

SEVERAL_AUTHORIZATIONS = (
    b'{"error": "invalid_request", "error_description": "Send one Authorization header '
    b'(Bearer and the API key or token); this request has more than one."}'
)

BODY_TOO_SLOW = (
    b'{"error": "request_timeout", "error_description": "The request body did not arrive in time."}'
)

QUERY_REFUSED = (
    b'{"error": "invalid_request", "error_description": "Send the API key in the '
    b'Authorization header (Bearer); /mcp takes no query parameters."}'
)

METHOD_REFUSED = (
    b'{"error": "method_not_allowed", "error_description": "This MCP endpoint answers '
    b'POST requests; it offers no standalone event stream."}'
)


async def respond(
    send, status: int, body: bytes, *, allow: bytes | None = None, retry_after: bytes | None = None
) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 408:
        # The rest of the body may still trickle in: the connection can't be reused.
        headers.append((b"connection", b"close"))
    if allow:
        headers.append((b"allow", allow))
    if retry_after:
        headers.append((b"retry-after", retry_after))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def failure_bucket(scope) -> str:
    """The limiter bucket a request's authentication failures count in: its client address.

    Failures are not counted per key id as well. A key's public id is not a secret (the
    dashboard, the admin and whoami show it, and anyone can compute a matching checksum),
    so a count per id let anyone keep someone else's key at 429 with forged requests,
    from any address. What that count slowed down, guessing one key's secret from many
    addresses, is hopeless anyway: a secret is 43 random base62 characters (~256 bits).
    Nor does this read the token (its scheme, its id): only the SDK and auth.py parse it.
    """
    address = (scope.get("client") or ("?",))[0]
    try:
        if ipaddress.ip_address(address).version == 6:
            # One IPv6 client commonly holds a whole /64: counted as one.
            return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    except ValueError:
        pass
    return f"ip:{address}"


def watch_unauthorized(send, on_failure, refusal: auth.Refusal):
    """Wrap `send` to call `on_failure` when the answer is a 401, and to say in it what
    the SDK can't: the scope to ask for, and why a real key was refused (`refusal`).
    A tool call refused for want of scope (`refusal.insufficient_scope`, set by the
    policy) is answered 403 instead, so an OAuth client can ask for more, unless it is
    answered with an event stream."""
    start = None
    body = b""

    async def watching_send(message):
        nonlocal start, body
        if message["type"] == "http.response.start":
            if message["status"] == 401:
                on_failure()
                start = message  # held back until the body is known: its length changes
                return
            # An event stream's answer is the tool's error alone: its 200 may be on the
            # wire before the refusal is known (asks_for_progress).
            if (
                message["status"] == 200
                and refusal.insufficient_scope is not None
                and not is_event_stream(message)
            ):
                start = message
                return
        if start is not None and message["type"] == "http.response.body":
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            if start["status"] == 401:
                answer_start, answer_body = explained(start, body, refusal.description)
            else:
                answer_start, answer_body = insufficient_scope(start, refusal.insufficient_scope)
            await send(answer_start)
            await send({"type": "http.response.body", "body": answer_body})
            return
        await send(message)

    return watching_send


def is_event_stream(start: dict) -> bool:
    return any(
        name == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in start["headers"]
    )


def explained(start: dict, body: bytes, description: str | None) -> tuple[dict, bytes]:
    """The SDK's 401 (its start message and body) with the scope to ask for in its
    WWW-Authenticate header, and saying `description` (if any) instead of its generic
    error_description, in the header and the JSON body alike. Everything else is kept:
    the same status, headers and fields as any other 401."""
    if description is not None:
        answer = json.loads(body)
        answer["error_description"] = description
        body = json.dumps(answer).encode()
    quoted = f'error_description="{description}"'.encode()
    headers = []
    for name, value in start["headers"]:
        if name == b"www-authenticate":
            if description is not None:
                value = re.sub(rb'error_description="[^"]*"', lambda _: quoted, value)
            value += f', scope="{oauth_server.ALL_SCOPES}"'.encode()
        elif name == b"content-length":
            value = str(len(body)).encode()
        headers.append((name, value))
    return {**start, "headers": headers}, body


def insufficient_scope(start: dict, scope: str) -> tuple[dict, bytes]:
    """A 403 for a write asked of a read-only OAuth grant (RFC 6750 3.1), in place of the
    SDK's 200 that carries the tool's error."""
    description = "This app was given read-only access; ask the user for read and write."
    body = json.dumps({"error": "insufficient_scope", "error_description": description})
    body = body.encode()
    challenge = (
        f'Bearer error="insufficient_scope", scope="{scope}", '
        f'error_description="{description}", '
        f'resource_metadata="{settings.PORTAL_BASE_URL}/.well-known/oauth-protected-resource/mcp"'
    )
    headers = [
        (name, value)
        for name, value in start["headers"]
        if name not in (b"content-length", b"content-type")
    ]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode()),
    ]
    return {**start, "status": 403, "headers": headers}, body


DATABASE_UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "The portal cannot check API keys or tokens right now (its "
    "database is not answering). Try again in a little while.",
}


async def server_error(request, exc: Exception) -> Response:
    """The answer to an unhandled error: 503 if the database is away, else a plain 500.

    The key check runs in the SDK's auth middleware, outside Starlette's per-route
    exception handling: only the outermost (500) handler sees what it raises, so
    server.build_app installs this one there.
    """
    if isinstance(exc, auth.DatabaseUnavailable):
        return JSONResponse(DATABASE_UNAVAILABLE, status_code=503, headers={"Retry-After": "10"})
    return PlainTextResponse("Internal Server Error", status_code=500)

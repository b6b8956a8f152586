"""The portal's HTTP checks around the SDK's /mcp app, before any key is checked.

In the order a request meets them: repeated authentication failures (429), a query string
(400: keys go in the Authorization header), GET (405: no event stream in stateless JSON
mode). Then the SDK's app verifies the key (auth.py): a refused key's 401 says why when
its holder may be told, and a key the database could not check is answered 503
(`server_error`). The body size limit is the SDK's own (server.build_app passes
MCP_MAX_REQUEST_BYTES), applied after the key check, so a request without a good key
gets its 401 whatever its size.
"""

import json
import logging
import re

from django.conf import settings
from starlette.responses import JSONResponse, PlainTextResponse, Response

from . import auth, oauth_server
from .policy import RateLimiter

logger = logging.getLogger(__name__)


def guarded(app):
    """`app` (the SDK's ASGI app for /mcp and its metadata) with the portal's checks."""
    # Failed authentications per client address and per key id, in this worker.
    failures = RateLimiter()

    async def gateway(scope, receive, send):
        refusal = auth.Refusal()
        if scope["type"] == "http":
            on_endpoint = scope["path"].startswith("/mcp")
            if on_endpoint:
                buckets = failure_buckets(scope)
                limit = settings.MCP_AUTH_FAILURES_PER_MINUTE
                if any(failures.exceeded(bucket, limit) for bucket in buckets):
                    return await respond(send, 429, TOO_MANY_FAILURES, retry_after=b"60")
                send = watch_unauthorized(send, lambda: failures.record_all(buckets), refusal)
            # Keys belong in the Authorization header: a key in a URL ends up in logs
            # and browser history, so a query string is refused outright.
            if on_endpoint and scope.get("query_string"):
                return await respond(send, 400, QUERY_REFUSED)
            # Stateless JSON mode has no server-to-client stream to open; the spec's
            # answer to such a GET is 405 (an SSE stream here would just hang).
            if on_endpoint and scope["method"] == "GET":
                return await respond(send, 405, METHOD_REFUSED, allow=b"POST")
        token = auth.refusal.set(refusal)
        try:
            await app(scope, receive, send)
        except auth.DatabaseUnavailable:
            # Already answered 503 (server_error); a line per request, not a traceback.
            logger.warning("Answered 503: the database did not answer an API key check")
        finally:
            auth.refusal.reset(token)

    return gateway


TOO_MANY_FAILURES = (
    b'{"error": "too_many_failures", "error_description": "Too many requests with a '
    b'missing or wrong API key or token; wait a minute before trying again."}'
)

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


def failure_buckets(scope) -> list[str]:
    """The limiter buckets a request's authentication failures count in: the client address and,
    for a well-formed key, its public id (so guessing one key's secret is slowed down
    from any number of addresses)."""
    buckets = [f"ip:{(scope.get('client') or ('?',))[0]}"]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            presented = value.decode("latin-1").removeprefix("Bearer ").strip()
            public_id = auth.public_id_of(presented)
            if public_id:
                buckets.append(f"key:{public_id}")
    return buckets


def watch_unauthorized(send, on_failure, refusal: auth.Refusal):
    """Wrap `send` to call `on_failure` when the answer is a 401, and to say in it what
    the SDK can't: the scope to ask for, and why a real key was refused (`refusal`).
    A tool call refused for want of scope (`refusal.insufficient_scope`, set by the
    policy) is answered 403 instead, so an OAuth client can ask for more."""
    start = None
    body = b""

    async def watching_send(message):
        nonlocal start, body
        if message["type"] == "http.response.start":
            if message["status"] == 401:
                on_failure()
                start = message  # held back until the body is known: its length changes
                return
            if message["status"] == 200 and refusal.insufficient_scope is not None:
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

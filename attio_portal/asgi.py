"""The one ASGI application: the MCP gateway at /mcp, Django for everything else.

Serve it with uvicorn and `--lifespan on`: the lifespan is where the MCP app starts its
session manager, and Django's own ASGI handler does not accept lifespan events.
"""

import os

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")

# Bytes read at a time when a file response is streamed.
FILE_CHUNK_BYTES = 64 * 1024


class PortalASGIHandler(ASGIHandler):
    """Django's ASGI handler, streaming file responses without a synchronous iterator.

    WhiteNoise (6.x has no ASGI support) answers each static file with a FileResponse
    over an open file. Under ASGI, Django serves such a synchronous iterator by reading
    it whole in a thread and warns about it on every one ("StreamingHttpResponse must
    consume synchronous iterators..."). Here the file is read in chunks in a thread
    instead; the rest of the response, headers and middleware included, is Django's.
    """

    async def send_response(self, response, send):
        if isinstance(response, FileResponse) and not response.is_async:
            if response.file_to_stream is not None:
                response.streaming_content = read_in_chunks(response.file_to_stream)
            else:
                # A HEAD or 304 answer (WhiteNoise gives no body), or some other iterator.
                response.streaming_content = all_at_once(response.streaming_content)
        await super().send_response(response, send)


async def read_in_chunks(file):
    read = sync_to_async(file.read, thread_sensitive=False)
    while chunk := await read(FILE_CHUNK_BYTES):
        yield chunk


async def all_at_once(parts):
    # What Django does with any synchronous iterator, without the warning.
    for part in await sync_to_async(list)(parts):
        yield part


# Django must be set up before anything imports models (what get_asgi_application does).
django.setup(set_prefix=False)
django_app = PortalASGIHandler()

from mcp_gateway.server import build_server, gateway_app  # noqa: E402

# Paths the MCP app answers; the rest is Django (the OAuth server and its metadata too).
MCP_PATH_PREFIXES = ("/mcp",)


def is_mcp_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in MCP_PATH_PREFIXES)


def dispatcher(mcp_app):
    mcp_app = https_only(mcp_app)

    async def application(scope, receive, send) -> None:
        # The lifespan goes to the MCP app: it starts the SDK's session manager.
        if scope["type"] == "lifespan" or is_mcp_path(scope.get("path", "")):
            return await mcp_app(scope, receive, send)
        return await django_app(scope, receive, send)

    return application


HTTPS_REQUIRED = (
    b'{"error": "https_required", "error_description": "This MCP endpoint answers over '
    b'https only. Use the https:// address of the portal."}'
)


def is_secure(scope) -> bool:
    """As Django's request.is_secure(): the proxy's SECURE_PROXY_SSL_HEADER when it is
    there, else the connection's own scheme."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        wanted = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        for name, value in scope.get("headers", []):
            if name == wanted:
                return value.decode("latin-1").split(",")[0].strip() == secure_value
    return scope.get("scheme") == "https"


def https_only(app):
    """What Django's SecurityMiddleware does for its pages, for /mcp, which goes around
    Django: with SECURE_SSL_REDIRECT on, plain http is refused (403 saying to use https:
    a redirect would have the client send its key or token again, in the clear), and
    answers over https carry HSTS."""
    hsts = b"max-age=%d" % settings.SECURE_HSTS_SECONDS
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        hsts += b"; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        hsts += b"; preload"

    async def guarded(scope, receive, send):
        if scope["type"] != "http" or not settings.SECURE_SSL_REDIRECT:
            return await app(scope, receive, send)
        if not is_secure(scope):
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            return await send({"type": "http.response.body", "body": HTTPS_REQUIRED})
        if not settings.SECURE_HSTS_SECONDS:
            return await app(scope, receive, send)

        async def send_with_hsts(message):
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"strict-transport-security", hsts)]
                message = {**message, "headers": headers}
            await send(message)

        return await app(scope, receive, send_with_hsts)

    return guarded


mcp_server = build_server()
application = dispatcher(gateway_app(mcp_server))

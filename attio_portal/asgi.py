"""The one ASGI application: the MCP gateway at /mcp, Django for everything else.

Serve it with uvicorn and `--lifespan on`: the lifespan is where the MCP app starts its
session manager, and Django's own ASGI handler does not accept lifespan events.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")

# Django must be set up before anything imports models.
django_app = get_asgi_application()

# Paths the MCP app answers; the rest goes to Django. The MCP gateway issue mounts its
# streamable-HTTP app here.
MCP_PATH_PREFIXES = ("/mcp", "/.well-known/oauth-protected-resource")
mcp_app = None


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def is_mcp_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in MCP_PATH_PREFIXES)


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        if mcp_app is not None:
            return await mcp_app(scope, receive, send)
        return await lifespan(scope, receive, send)
    if mcp_app is not None and is_mcp_path(scope.get("path", "")):
        return await mcp_app(scope, receive, send)
    return await django_app(scope, receive, send)

"""The one ASGI application: the MCP gateway at /mcp, Django for everything else.

Serve it with uvicorn and `--lifespan on`: the lifespan is where the MCP app starts its
session manager, and Django's own ASGI handler does not accept lifespan events.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")

# Django must be set up before anything imports models.
django_app = get_asgi_application()

from mcp_gateway.server import build_server, gateway_app  # noqa: E402

# Paths the MCP app answers (the endpoint and its RFC 9728 metadata); the rest is Django.
MCP_PATH_PREFIXES = ("/mcp", "/.well-known/oauth-protected-resource")


def is_mcp_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in MCP_PATH_PREFIXES)


def dispatcher(mcp_app):
    async def application(scope, receive, send) -> None:
        # The lifespan goes to the MCP app: it starts the SDK's session manager.
        if scope["type"] == "lifespan" or is_mcp_path(scope.get("path", "")):
            return await mcp_app(scope, receive, send)
        return await django_app(scope, receive, send)

    return application


mcp_server = build_server()
application = dispatcher(gateway_app(mcp_server))

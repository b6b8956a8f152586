"""Builds the MCP server (the key verifier, the policy, the tools) and its ASGI app.

A request goes: http.py (the portal's HTTP checks) -> the SDK's app, which verifies the
key (auth.py) -> policy.py -> the tool (tools/) -> tools/_call.py -> connections/attio.py.
"""

import contextlib

from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError

from connections import attio

from . import auth, http, oauth_server, policy, resources, tools
from .tools._arguments import argument_errors

INSTRUCTIONS = (
    "Tools for the user's own Attio CRM workspace, reached through their Attio Portal "
    "connection. Start with `whoami` to see the workspace and what this key may do, and "
    "`list_objects` / `list_attributes` before writing records: values use Attio's shapes "
    "keyed by attribute slug."
)


def build_server() -> MCPServer:
    key_checks = auth.credential_checks()
    server = GatewayServer(
        name="attio-portal",
        title="Attio (via Attio Portal)",
        instructions=INSTRUCTIONS,
        version="1.0",
        token_verifier=auth.PortalVerifier(key_checks),
        auth=AuthSettings(
            issuer_url=settings.PORTAL_BASE_URL,
            resource_server_url=oauth_server.mcp_url(),
            validate_token_resource=True,
            service_documentation_url=f"{settings.PORTAL_BASE_URL}/",
        ),
        log_level="WARNING",
        middleware=[policy.middleware, resources.middleware],
        lifespan=lifespan(key_checks),
    )
    tools.register(server)
    resources.register(server)
    return server


def gateway_app(server: MCPServer):
    """The ASGI app for /mcp and its metadata, with the portal's own checks around it."""
    return http.guarded(build_app(server))


def build_app(server: MCPServer):
    """The SDK's ASGI app, without the portal's HTTP checks (http.py)."""
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
    app.add_exception_handler(Exception, http.server_error)
    StreamingWhenAsked.adopt(server.session_manager)
    return app


class StreamingWhenAsked(StreamableHTTPSessionManager):
    """The SDK's session manager, answering each POST with one JSON body (the cheaper
    answer) unless the request asks for progress and takes an event stream
    (http.asks_for_progress): then with a stream, which carries the progress
    notifications before the answer.

    The SDK takes `json_response` once for its app, and reads it per request when it makes
    the request's transport; its app and lifespan are built around the manager it makes,
    so that manager is adopted as this class rather than replaced."""

    @classmethod
    def adopt(cls, manager: StreamableHTTPSessionManager) -> None:
        if type(manager) is not StreamableHTTPSessionManager or not manager.stateless:
            raise TypeError("StreamingWhenAsked adopts the SDK's stateless session manager")
        manager.__class__ = cls

    @property
    def json_response(self) -> bool:
        post = http.pending_post.get()
        return post is None or not http.asks_for_progress(*post)

    @json_response.setter
    def json_response(self, _value: bool) -> None:
        # The answer is chosen per request; what the SDK set when it made the manager (in
        # the instance's dict, which this property shadows) is not read.
        pass


class GatewayServer(MCPServer):
    """The SDK's server, answering arguments that don't fit a tool in the portal's words,
    and listing the tools as lean as a model can use them (tools.definitions)."""

    _definitions = None

    async def list_tools(self):
        # Built once: the tools don't change once the server is built.
        if self._definitions is None:
            self._definitions = tools.definitions(await super().list_tools())
        return self._definitions

    async def call_tool(self, name: str, arguments: dict, context=None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            # The SDK raises a plain ToolError over pydantic's ValidationError when the
            # arguments don't fit the tool's signature, and puts its text on the wire.
            # Every other failure, and every call that succeeds, passes through as is.
            if type(e) is not ToolError or not isinstance(e.__cause__, ValidationError):
                raise
            message = argument_errors(e.__cause__)
            # From the ValidationError still, which the SDK logs (field names only).
            raise ToolError(f"Error executing tool {name}: {message}") from e.__cause__


def lifespan(key_checks):
    """The MCP server's lifespan: the key checks' connections, the audit trail's writer and
    the pool of connections to Attio."""

    @contextlib.asynccontextmanager
    async def running(_server):
        try:
            async with key_checks.running(), policy.audit_trail.running():
                yield {}
        finally:
            # Hang up the ORM thread's connections now rather than at the process's exit
            # (a server run in a thread, as some tests do, would leave them open); the
            # same for the connections to Attio, which aiohttp otherwise reports unclosed.
            await sync_to_async(auth.close_database_connections)()
            await attio.aclose_clients()

    return running

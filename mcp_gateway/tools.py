"""The MCP tools: one small function each. Each resolves the caller's connection, calls
Attio through connections.attio with that connection's token, and shapes the result.
Error text for the client is written here; Attio's raw body never reaches it."""

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from connections import attio, services
from connections.models import Connection

from .models import ApiKey

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Identifiers go into URL paths: letters, digits, '-' and '_' only, so no argument can
# steer a request anywhere but the Attio endpoint it names.
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="An API slug (e.g. `people`) or a UUID",
    ),
]
Uuid = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="A UUID",
    ),
]


# --- Registry ---------------------------------------------------------------------------


@dataclass
class ToolSpec:
    fn: Callable[..., Awaitable[Any]]
    title: str
    annotations: ToolAnnotations


REGISTRY: dict[str, ToolSpec] = {}


def tool(*, title: str, read_only: bool, destructive: bool = False, idempotent: bool = False):
    """Register a tool with its annotations. Every tool reaches Attio (open world)."""

    def decorator(fn):
        REGISTRY[fn.__name__] = ToolSpec(
            fn=fn,
            title=title,
            annotations=ToolAnnotations(
                title=title,
                read_only_hint=read_only,
                destructive_hint=destructive,
                idempotent_hint=idempotent or read_only,
                open_world_hint=True,
            ),
        )
        return fn

    return decorator


def register(server: MCPServer) -> None:
    for name, spec in REGISTRY.items():
        server.add_tool(spec.fn, name=name, title=spec.title, annotations=spec.annotations)


def exists(name: str) -> bool:
    return name in REGISTRY


def is_read_only(name: str | None) -> bool:
    spec = REGISTRY.get(name or "")
    return spec is not None and bool(spec.annotations.read_only_hint)


# --- The caller and their connection ------------------------------------------------------


def current_key() -> ApiKey:
    access = get_access_token()
    if access is None or not access.claims or "api_key" not in access.claims:
        # The SDK's auth middleware guarantees a verified key on /mcp.
        raise RuntimeError("no authenticated API key in this request")
    return access.claims["api_key"]


def fail(message: str, code: str) -> ToolError:
    log = attio.call_log.get()
    if log is not None:
        log.error_code = code
    return ToolError(message)


def reconnect_error(connection: Connection) -> ToolError:
    return fail(
        f"The Attio workspace “{connection.workspace_name}” needs to be reconnected: Attio "
        f"no longer accepts the portal's access. Reconnect it at {settings.PORTAL_BASE_URL}/ "
        "(one click, then approve on Attio's page), then try again.",
        "needs_reconnect",
    )


def usable_connection(connection: Connection) -> Connection:
    if connection.status == Connection.Status.REVOKED or not connection.access_token_sealed:
        raise fail(
            f"The Attio workspace “{connection.workspace_name}” is no longer connected to "
            f"the portal. Connect it again at {settings.PORTAL_BASE_URL}/ and create a new key.",
            "not_connected",
        )
    if connection.status != Connection.Status.ACTIVE:
        raise reconnect_error(connection)
    return connection


NEXT_STEPS = {
    400: "Check the arguments against the object's attributes (`list_attributes`) and "
    "Attio's value shapes, then try again.",
    403: "The Attio connection lacks a permission (scope) this needs; ask your Attio admin "
    "to grant it to the app, then reconnect at the portal.",
    404: "Check the id or slug; `search_records`, `list_objects` and `list_lists` find valid ones.",
    409: "Something with that unique value already exists; fetch it instead of creating it.",
    429: "Attio's rate limit was reached; wait a little and try again.",
}


def attio_failure(error: attio.AttioError, *, write: bool) -> ToolError:
    """A tool error carrying Attio's message and code, a reference id and a next step."""
    reference = uuid.uuid4().hex[:12]
    logger.warning(
        "Attio call failed (reference %s): status=%s code=%s",
        reference,
        error.status,
        error.code,
    )
    if error.status is None or error.status >= 500:
        step = (
            "Attio did not confirm the change: check whether it was applied before trying again."
            if write
            else "Attio is unavailable or slow right now; try again in a minute."
        )
    else:
        step = NEXT_STEPS.get(error.status, "Check the request and try again.")
    detail = f"code: {error.code}, " if error.code else ""
    status = f"HTTP {error.status}" if error.status else "no answer"
    return fail(
        f"Attio: {error.message} ({detail}{status}, reference {reference}). {step}",
        error.code or f"http_{error.status}",
    )


async def call_attio(
    call: Callable[..., Awaitable[T]], *args: Any, write: bool = False, **kwargs: Any
) -> T:
    """Call Attio with the caller's own token: one refresh (or check) and one retry on 401."""
    key = current_key()
    connection = usable_connection(key.connection)
    try:
        return await call(connection.access_token(), *args, **kwargs)
    except attio.AttioError as e:
        if e.status != 401:
            raise attio_failure(e, write=write) from None
    # Attio refused the token: let the single-flight function refresh or re-check it.
    try:
        await sync_to_async(services.ensure_fresh)(connection.pk, seen_version=connection.version)
    except attio.AttioError as e:
        raise attio_failure(e, write=write) from None
    connection = await Connection.objects.aget(pk=connection.pk)
    usable_connection(connection)
    try:
        return await call(connection.access_token(), *args, **kwargs)
    except attio.AttioError as e:
        if e.status == 401:
            raise reconnect_error(connection) from None
        raise attio_failure(e, write=write) from None


# --- Tools ------------------------------------------------------------------------------


class WhoAmI(BaseModel):
    workspace_id: str
    workspace_name: str
    workspace_slug: str
    scopes: list[str]
    portal_user: str
    api_key: str
    api_key_name: str
    read_only: bool


@tool(title="Who am I", read_only=True)
async def whoami() -> WhoAmI:
    """Show the Attio workspace this key reaches, the scopes Attio granted, and the portal
    user and API key in use. Call it first to check the connection works."""
    key = current_key()
    identity = await call_attio(attio.aget_self)
    if not identity.active:
        raise reconnect_error(key.connection)
    return WhoAmI(
        workspace_id=identity.workspace_id,
        workspace_name=identity.workspace_name,
        workspace_slug=identity.workspace_slug,
        scopes=identity.scope.split(),
        portal_user=key.owner.get_username(),
        api_key=key.display_id,
        api_key_name=key.name,
        read_only=key.read_only,
    )

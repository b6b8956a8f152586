"""What every tool stands on: the caller's connection, the Attio call with the caller's own
token (one refresh and retry on a 401), Attio's errors as tool errors, and the valid slugs
when Attio names an unknown attribute. Error text for the client is written here and in
the tools; Attio's raw body never reaches it."""

import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.mcpserver.exceptions import ToolError

from connections import attio, freshness
from connections.models import Connection

from .. import auth
from ..auth import Caller

logger = logging.getLogger(__name__)

T = TypeVar("T")


# --- The caller, and a tool's run -----------------------------------------------------------


class ToolFailure(ToolError):
    """A tool error for the client, with the code its audit row records."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def as_sdk_tool(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The tool `fn` as the SDK calls it: without `fn`'s first parameter, the Caller, which
    this passes in, and noting on the caller's Outcome what Attio answered and the code of
    the failure the call ends with (policy.py writes both into the audit trail).

    The SDK's own way to fill a parameter, `Annotated[Caller, Resolve(...)]`, cost ~0.1 ms
    of CPU per call (bench/gateway_parts.py; it builds a pydantic generic model each time),
    so the SDK is shown the signature without `caller` instead.
    """
    signature = inspect.signature(fn)
    first, *arguments = signature.parameters.values()
    if first.name != "caller":
        raise TypeError(f"{fn.__name__}: a tool's first parameter is `caller: Caller`")

    async def run(**kwargs: Any) -> T:
        caller = auth.current_caller()
        observing = attio.answer_observer.set(caller.outcome.saw_answer)
        try:
            return await fn(caller, **kwargs)
        except ToolFailure as failure:
            caller.outcome.error_code = failure.code
            raise
        finally:
            attio.answer_observer.reset(observing)

    run.__name__, run.__qualname__, run.__module__ = fn.__name__, fn.__qualname__, fn.__module__
    run.__doc__ = fn.__doc__
    run.__signature__ = signature.replace(parameters=arguments)
    run.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != "caller"}
    return run


# --- The caller's connection, and the Attio call ---------------------------------------------


def reconnect_error(connection: Connection) -> ToolFailure:
    return ToolFailure(
        f"The Attio workspace “{connection.workspace_name}” needs to be reconnected: Attio "
        f"no longer accepts the portal's access. Reconnect it at {settings.PORTAL_BASE_URL}/ "
        "(one click, then approve on Attio's page), then try again.",
        "needs_reconnect",
    )


def usable_connection(connection: Connection) -> Connection:
    if connection.can_be_restored:
        reason = f" ({connection.revoked_reason})" if connection.revoked_reason else ""
        raise ToolFailure(
            f"An administrator revoked the portal's access to the Attio workspace "
            f"“{connection.workspace_name}”{reason}. Reconnect it at "
            f"{settings.PORTAL_BASE_URL}/ (one click, then approve on Attio's page), then "
            "try again.",
            "revoked_by_admin",
        )
    if connection.status == Connection.Status.REVOKED or not connection.access_token_sealed:
        raise ToolFailure(
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


def attio_failure(error: attio.AttioError, *, write: bool) -> ToolFailure:
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
    return ToolFailure(
        f"Attio: {error.message} ({detail}{status}, reference {reference}). {step}",
        error.code or f"http_{error.status}",
    )


def refreshed(connection: Connection) -> Connection:
    """The connection after the single-flight refresh (or check), read again."""
    auth.close_stale_database_connections()  # no request cycle does it here
    freshness.ensure_fresh(connection.pk, seen_version=connection.version)
    return Connection.objects.get(pk=connection.pk)


async def call_attio(
    caller: Caller,
    call: Callable[..., Awaitable[T]],
    *args: Any,
    write: bool = False,
    **kwargs: Any,
) -> T:
    """Call Attio with the caller's own token: one refresh (or check) and one retry on 401."""
    connection = usable_connection(caller.connection)
    try:
        return await call(connection.access_token(), *args, **kwargs)
    except attio.AttioError as e:
        if e.status != 401:
            raise attio_failure(e, write=write) from None
    # Attio refused the token: let the single-flight function refresh or re-check it.
    try:
        connection = await sync_to_async(refreshed)(connection)
    except attio.AttioError as e:
        raise attio_failure(e, write=write) from None
    usable_connection(connection)
    try:
        return await call(connection.access_token(), *args, **kwargs)
    except attio.AttioError as e:
        if e.status == 401:
            raise reconnect_error(connection) from None
        raise attio_failure(e, write=write) from None


# --- Helpful errors for unknown attribute slugs ---------------------------------------------

UNKNOWN_ATTRIBUTE = re.compile(r'Cannot find attribute with slug/ID "[^"]*"')


@dataclass
class Schema:
    """What is kept of an object's or list's attributes: their slugs and, once read from
    Attio here, each one's type, which are multiselect, and the titles of select options
    and statuses by id (read only for values that carry an id alone). `types` is None
    while only the slugs are known, and empty when Attio would not give the attributes."""

    slugs: list[str]
    types: dict[str, str] | None = None
    multiselect: frozenset[str] = frozenset()
    titles: dict[str, dict[str, str]] = field(default_factory=dict)


# Attributes per connection: {connection_id: {(target, identifier): (expires, Schema)}}.
# Per connection, not per workspace: two connections to one workspace may see different
# attributes (their scopes differ), and one workspace's schema never answers for another's.
ATTRIBUTE_SLUGS: dict[int, dict[tuple[str, str], tuple[float, Schema]]] = {}
ATTRIBUTE_SLUGS_SECONDS = 60.0


def remember_schema(connection_id: int, target: str, identifier: str, schema: Schema) -> None:
    now = time.monotonic()
    cache = ATTRIBUTE_SLUGS.setdefault(connection_id, {})
    for key in [k for k, (expires, _) in cache.items() if expires <= now]:
        del cache[key]
    cache[(target, identifier)] = (now + ATTRIBUTE_SLUGS_SECONDS, schema)


def remember_slugs(connection_id: int, target: str, identifier: str, slugs: list[str]) -> None:
    remember_schema(connection_id, target, identifier, Schema(slugs))


def forget_slugs(connection_id: int) -> None:
    """After a schema change through this connection, drop everything cached of its
    schema: the object or list changed may be cached under its slug and its UUID, and a
    renamed one under a slug that no longer names it."""
    ATTRIBUTE_SLUGS.pop(connection_id, None)


def cached_schema(connection_id: int, target: str, identifier: str) -> Schema | None:
    cached = ATTRIBUTE_SLUGS.get(connection_id, {}).get((target, identifier))
    return cached[1] if cached and cached[0] > time.monotonic() else None


def schema_of(attributes: list[dict]) -> Schema:
    named = [a for a in attributes if a.get("api_slug")]
    return Schema(
        slugs=sorted(str(a["api_slug"]) for a in named),
        types={str(a["api_slug"]): str(a.get("type") or "") for a in named},
        multiselect=frozenset(str(a["api_slug"]) for a in named if a.get("is_multiselect")),
    )


async def attribute_schema(
    caller: Caller, target: str, identifier: str, *, titles_for: Iterable[str] = ()
) -> Schema:
    """The attributes of an object or list for shaping its values: cached, else read from
    Attio once, and the option or status titles of the `titles_for` attributes not known
    yet. Never fails: what Attio would not give is kept as unknown for the cache's minute
    (values then come back as lists), so a read without the scope pays for it once."""
    connection_id = caller.connection.pk
    status = caller.outcome.attio_status
    try:
        schema = cached_schema(connection_id, target, identifier)
        if schema is None or schema.types is None:
            try:
                attributes = await call_attio(caller, attio.alist_attributes, target, identifier)
            except ToolFailure:
                schema = Schema(slugs=[], types={})
            else:
                schema = schema_of(attributes)
            remember_schema(connection_id, target, identifier, schema)
        for slug in titles_for:
            if slug not in schema.titles:
                schema.titles[slug] = await choice_titles(caller, target, identifier, schema, slug)
        return schema
    finally:
        # The audit keeps the status of the tool's own call, not of these look-ups.
        caller.outcome.attio_status = status


async def choice_titles(
    caller: Caller, target: str, identifier: str, schema: Schema, slug: str
) -> dict[str, str]:
    """{id: title} of a select attribute's options or a status attribute's statuses."""
    kind = (schema.types or {}).get(slug)
    if kind not in ("select", "status"):
        return {}
    call, id_name = (
        (attio.alist_select_options, "option_id")
        if kind == "select"
        else (attio.alist_statuses, "status_id")
    )
    try:
        choices = await call_attio(caller, call, target, identifier, slug)
    except ToolFailure:
        return {}
    return {
        str((c.get("id") or {}).get(id_name)): str(c.get("title") or "")
        for c in choices
        if (c.get("id") or {}).get(id_name)
    }


async def known_slugs(caller: Caller, token: str, target: str, identifier: str) -> list[str]:
    """The attribute slugs of an object or list (cached briefly per connection); [] if
    unknown."""
    connection_id = caller.connection.pk
    cached = cached_schema(connection_id, target, identifier)
    if cached is not None:
        return cached.slugs
    failed_status = caller.outcome.attio_status
    try:
        attributes = await attio.alist_attributes(token, target, identifier)
    except attio.AttioError:
        return []
    finally:
        # The audit keeps the status of the call that failed, not of this look-up.
        caller.outcome.attio_status = failed_status
    schema = schema_of(attributes)
    remember_schema(connection_id, target, identifier, schema)
    return schema.slugs


async def call_with_slug_help(
    caller: Caller,
    target: str,
    identifier: str,
    call: Callable[..., Awaitable[T]],
    *args: Any,
    write: bool,
    **kwargs: Any,
) -> T:
    """`call_attio`, and when Attio names an unknown attribute, list the valid slugs."""

    async def attempt(token: str, *args: Any, **kwargs: Any) -> T:
        try:
            return await call(token, *args, **kwargs)
        except attio.AttioError as e:
            if e.status != 400 or not UNKNOWN_ATTRIBUTE.search(e.message):
                raise
            slugs = await known_slugs(caller, token, target, identifier)
            if not slugs:
                raise
            noun = "object" if target == "objects" else "list"
            raise attio.AttioError(
                f"{e.message} The {noun} `{identifier}` has these attribute slugs: "
                f"{', '.join(slugs)}.",
                status=e.status,
                code=e.code,
            ) from None

    return await call_attio(caller, attempt, *args, write=write, **kwargs)

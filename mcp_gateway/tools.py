"""The MCP tools: one small function each. Each resolves the caller's connection, calls
Attio through connections.attio with that connection's token, and shapes the result.
Error text for the client is written here; Attio's raw body never reaches it."""

import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from connections import attio, services
from connections.models import Connection

from . import auth
from .models import ApiKey

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Identifiers go into URL paths: letters, digits, '-' and '_' only, so no argument can
# steer a request anywhere but the Attio endpoint it names.
SLUG_PATTERN = r"^[A-Za-z0-9_-]+$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MEMBER_PATTERN = rf"^[^\s@]+@[^\s@]+$|{UUID_PATTERN}"

Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=SLUG_PATTERN,
        description="An API slug (e.g. `people`) or a UUID",
    ),
]
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, description="A UUID")]


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
        server.add_tool(
            spec.fn,
            name=name,
            title=spec.title,
            # Without the docstring's indentation, which clients would show verbatim.
            description=inspect.cleandoc(spec.fn.__doc__ or ""),
            annotations=spec.annotations,
        )


def exists(name: str) -> bool:
    return name in REGISTRY


def is_read_only(name: str | None) -> bool:
    spec = REGISTRY.get(name or "")
    return spec is not None and bool(spec.annotations.read_only_hint)


# --- Arguments that don't fit a tool's signature ------------------------------------------

# The SDK validates a call's arguments against the tool function's signature; its
# ValidationError text (pydantic's wording, input echoes, links to pydantic's docs) is
# rewritten here, a line per argument. Only failed calls get here (server.GatewayServer).

PATTERN_PROBLEMS = {
    SLUG_PATTERN: "must be a slug or a UUID (letters, digits, '-' and '_' only)",
    UUID_PATTERN: "must be a UUID",
    MEMBER_PATTERN: "must be a workspace member's UUID or email address",
}
DATE_TIME_PROBLEM = "must be an ISO 8601 date or date-time, e.g. 2025-06-30T17:00:00Z"
TYPE_PROBLEMS = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "extra_forbidden": "unknown field",
}


def argument_problem(error: ErrorDetails) -> str:
    """What is wrong with one argument, in the portal's words (pydantic's as a last resort)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind in TYPE_PROBLEMS:
        return TYPE_PROBLEMS[kind]
    if kind == "string_pattern_mismatch":
        return PATTERN_PROBLEMS.get(ctx.get("pattern"), "is not in the expected form")
    if kind in ("string_too_short", "too_short"):
        minimum = ctx.get("min_length")
        if minimum == 1:
            return "must not be empty"
        unit = "characters" if kind == "string_too_short" else "items"
        return f"must have at least {minimum} {unit}"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, limit = bounds[kind]
        return f"must be {words} {ctx.get(limit)}"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected')}"
    if kind.startswith(("datetime_", "date_")):
        return DATE_TIME_PROBLEM
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])  # our own validators' messages (e.g. Sort's)
    return error["msg"]


def argument_path(loc: tuple) -> str:
    """`sorts[0].attribute` for pydantic's ("sorts", 0, "attribute")."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def argument_errors(error: ValidationError) -> str:
    """The message for a call whose arguments don't fit: one line per argument."""
    lines: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_input=False):
        loc, problem = detail["loc"], argument_problem(detail)
        if loc and loc[-1] == "[key]":
            # A dictionary key that is not allowed: ("values", "bad key", "[key]").
            loc, problem = loc[:-2], f"key {loc[-2]!r} {problem}"
        # The first problem of each argument is enough to fix it.
        lines.setdefault(argument_path(loc), problem)
    return "invalid arguments.\n" + "\n".join(
        f"{path}: {problem}" for path, problem in lines.items()
    )


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
    if connection.can_be_restored:
        reason = f" ({connection.revoked_reason})" if connection.revoked_reason else ""
        raise fail(
            f"An administrator revoked the portal's access to the Attio workspace "
            f"“{connection.workspace_name}”{reason}. Reconnect it at "
            f"{settings.PORTAL_BASE_URL}/ (one click, then approve on Attio's page), then "
            "try again.",
            "revoked_by_admin",
        )
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


def refreshed(connection: Connection) -> Connection:
    """The connection after the single-flight refresh (or check), read again."""
    auth.close_stale_database_connections()  # no request cycle does it here
    services.ensure_fresh(connection.pk, seen_version=connection.version)
    return Connection.objects.get(pk=connection.pk)


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


# --- Shared argument types ------------------------------------------------------------------

ObjectSlug = Annotated[
    Slug,
    Field(
        description="The object's API slug (`people`, `companies`, `deals` or a custom "
        "object's slug, see `list_objects`) or its UUID"
    ),
]
ListSlug = Annotated[Slug, Field(description="The list's API slug (see `list_lists`) or its UUID")]
RecordId = Annotated[Uuid, Field(description="The record's UUID (`record_id`)")]
EntryId = Annotated[Uuid, Field(description="The list entry's UUID (`entry_id`)")]
AttributeKey = Annotated[str, Field(min_length=1, max_length=128, pattern=SLUG_PATTERN)]
Values = Annotated[
    dict[AttributeKey, Any],
    Field(
        min_length=1,
        max_length=200,
        description="Attribute values keyed by attribute slug (or attribute UUID), in Attio's "
        'input shapes, e.g. {"name": "Ada Lovelace", "email_addresses": ["ada@example.com"], '
        '"company": {"target_object": "companies", "target_record_id": "<uuid>"}}. Each '
        "value may be one value or a list of values; null or [] clears the attribute. Use "
        "`list_attributes` for the slugs, types and select/status options.",
    ),
]
Filter = Annotated[
    dict[str, Any] | None,
    Field(
        description="An Attio filter object, passed through as is: shorthand "
        '{"name": "Acme Corp"} or verbose {"$and": [{"stage": {"$eq": "Won"}}, '
        '{"value": {"currency_value": {"$gte": 10000}}}]}. Operators include $eq, $contains, '
        "$starts_with, $ends_with, $lt, $lte, $gt, $gte, $in, $not_empty, $and, $or, $not. "
        "See https://docs.attio.com/rest-api/how-to/filtering-and-sorting. Omit for no filter."
    ),
]
Offset = Annotated[
    int, Field(ge=0, le=1_000_000, description="How many results to skip (for paging)")
]


class Sort(BaseModel):
    """One sort, by an attribute or by a path through record references."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["asc", "desc"]
    attribute: AttributeKey | None = Field(
        None, description="Attribute slug or UUID to sort by (give this or `path`)"
    )
    path: list[Annotated[list[AttributeKey], Field(min_length=2, max_length=2)]] | None = Field(
        None,
        description='[[object_or_list, attribute], ...] pairs, e.g. [["people", "company"], '
        '["companies", "name"]] (give this or `attribute`)',
    )
    field: AttributeKey | None = Field(
        None, description="Sub-field of the attribute, e.g. `last_name` of `name`"
    )

    @model_validator(mode="after")
    def attribute_or_path(self) -> "Sort":
        if (self.attribute is None) == (self.path is None):
            raise ValueError("give exactly one of `attribute` or `path`")
        return self


Sorts = Annotated[
    list[Sort] | None, Field(max_length=10, description="Sorts, applied in order; omit for none")
]


def attio_sorts(sorts: list[Sort] | None) -> list[dict]:
    return [s.model_dump(exclude_none=True) for s in sorts or []]


# --- Shaping Attio's answers ------------------------------------------------------------------

# Per-value bookkeeping Attio sends with every value; the model rarely needs it.
VALUE_HISTORY_KEYS = {"active_from", "active_until", "created_by_actor"}


def compact_value(value: dict) -> dict:
    out = {k: v for k, v in value.items() if k not in VALUE_HISTORY_KEYS}
    # Select options and statuses are written by title, so show them by title.
    for name in ("option", "status"):
        if isinstance(out.get(name), dict):
            out[name] = out[name].get("title")
    return out


def compact_values(values: dict | None) -> dict[str, list[dict]]:
    """Values keyed by slug, without empty attributes or per-value history."""
    return {
        slug: [compact_value(v) for v in items if isinstance(v, dict)]
        for slug, items in (values or {}).items()
        if items
    }


def values_for_attio(values: dict[str, Any]) -> dict[str, list]:
    """Attio takes a list of values per attribute: wrap single values, turn null into []."""
    return {
        slug: value if isinstance(value, list) else ([] if value is None else [value])
        for slug, value in values.items()
    }


def next_offset(count: int, limit: int, offset: int) -> int | None:
    # Attio returns no total: a full page means there may be more.
    return offset + count if count >= limit else None


def display_name(values: dict) -> str | None:
    for value in values.get("name") or []:
        name = value.get("full_name") or value.get("value")
        if name:
            return str(name)
    return None


def id_part(item: dict, name: str) -> str:
    return str((item.get("id") or {}).get(name) or "")


class Deleted(BaseModel):
    deleted: bool
    kind: str = Field(description="What was deleted: record, note, task or list entry")
    id: str


def deleted(kind: str, id: str) -> Deleted:
    return Deleted(deleted=True, kind=kind, id=id)


# --- Helpful errors for unknown attribute slugs ------------------------------------------------

UNKNOWN_ATTRIBUTE = re.compile(r'Cannot find attribute with slug/ID "[^"]*"')
# Attribute slugs per workspace: {workspace_id: {(target, identifier): (expires, slugs)}}.
# Keyed by the workspace alone, so one workspace's schema never answers for another's.
ATTRIBUTE_SLUGS: dict[str, dict[tuple[str, str], tuple[float, list[str]]]] = {}
ATTRIBUTE_SLUGS_SECONDS = 60.0


def remember_slugs(workspace_id: str, target: str, identifier: str, slugs: list[str]) -> None:
    now = time.monotonic()
    cache = ATTRIBUTE_SLUGS.setdefault(workspace_id, {})
    for key in [k for k, (expires, _) in cache.items() if expires <= now]:
        del cache[key]
    cache[(target, identifier)] = (now + ATTRIBUTE_SLUGS_SECONDS, slugs)


async def known_slugs(token: str, workspace_id: str, target: str, identifier: str) -> list[str]:
    """The attribute slugs of an object or list (cached briefly per workspace); [] if unknown."""
    cached = ATTRIBUTE_SLUGS.get(workspace_id, {}).get((target, identifier))
    if cached and cached[0] > time.monotonic():
        return cached[1]
    log = attio.call_log.get()
    failed_status = log.status if log else None
    try:
        attributes = await attio.alist_attributes(token, target, identifier)
    except attio.AttioError:
        return []
    finally:
        # The audit keeps the status of the call that failed, not of this look-up.
        if log is not None:
            log.status = failed_status
    slugs = sorted(str(a.get("api_slug")) for a in attributes if a.get("api_slug"))
    remember_slugs(workspace_id, target, identifier, slugs)
    return slugs


async def call_with_slug_help(
    target: str,
    identifier: str,
    call: Callable[..., Awaitable[T]],
    *args: Any,
    write: bool,
    **kwargs: Any,
) -> T:
    """`call_attio`, and when Attio names an unknown attribute, list the valid slugs."""
    workspace_id = current_key().connection.workspace_id

    async def attempt(token: str, *args: Any, **kwargs: Any) -> T:
        try:
            return await call(token, *args, **kwargs)
        except attio.AttioError as e:
            if e.status != 400 or not UNKNOWN_ATTRIBUTE.search(e.message):
                raise
            slugs = await known_slugs(token, workspace_id, target, identifier)
            if not slugs:
                raise
            noun = "object" if target == "objects" else "list"
            raise attio.AttioError(
                f"{e.message} The {noun} `{identifier}` has these attribute slugs: "
                f"{', '.join(slugs)}.",
                status=e.status,
                code=e.code,
            ) from None

    return await call_attio(attempt, *args, write=write, **kwargs)


# --- Schema tools -----------------------------------------------------------------------------


class ObjectInfo(BaseModel):
    object_id: str
    api_slug: str
    singular_noun: str | None
    plural_noun: str | None
    created_at: str | None


class ObjectList(BaseModel):
    objects: list[ObjectInfo]


@tool(title="List objects", read_only=True)
async def list_objects() -> ObjectList:
    """List the workspace's objects (people, companies, deals and custom objects) with their
    API slugs. Use a slug as `object` in the record tools, and `list_attributes` to see an
    object's fields. Needs the object_configuration:read scope."""
    objects = await call_attio(attio.alist_objects)
    return ObjectList(
        objects=[
            ObjectInfo(
                object_id=id_part(o, "object_id"),
                api_slug=o.get("api_slug") or "",
                singular_noun=o.get("singular_noun"),
                plural_noun=o.get("plural_noun"),
                created_at=o.get("created_at"),
            )
            for o in objects
        ]
    )


class Choice(BaseModel):
    title: str
    id: str
    is_archived: bool


class AttributeInfo(BaseModel):
    api_slug: str
    title: str
    type: str
    description: str | None
    is_required: bool
    is_unique: bool
    is_multiselect: bool
    is_writable: bool
    is_system_attribute: bool
    allowed_object_ids: list[str] | None = Field(
        None, description="For record-reference attributes: the objects it may point at"
    )
    options: list[Choice] | None = Field(None, description="For select attributes")
    statuses: list[Choice] | None = Field(None, description="For status attributes")


class AttributeList(BaseModel):
    target: str
    identifier: str
    attributes: list[AttributeInfo]


def attribute_info(a: dict) -> AttributeInfo:
    reference = ((a.get("config") or {}).get("record_reference")) or {}
    return AttributeInfo(
        api_slug=a.get("api_slug") or "",
        title=a.get("title") or "",
        type=a.get("type") or "",
        description=a.get("description"),
        is_required=bool(a.get("is_required")),
        is_unique=bool(a.get("is_unique")),
        is_multiselect=bool(a.get("is_multiselect")),
        is_writable=bool(a.get("is_writable")),
        is_system_attribute=bool(a.get("is_system_attribute")),
        allowed_object_ids=reference.get("allowed_object_ids"),
    )


def choices(items: list[dict], id_name: str) -> list[Choice]:
    return [
        Choice(
            title=c.get("title") or "",
            id=id_part(c, id_name),
            is_archived=bool(c.get("is_archived")),
        )
        for c in items
    ]


async def add_choices(target: str, identifier: str, attribute: AttributeInfo) -> None:
    if attribute.type == "select":
        items = await call_attio(attio.alist_select_options, target, identifier, attribute.api_slug)
        attribute.options = choices(items, "option_id")
    elif attribute.type == "status":
        items = await call_attio(attio.alist_statuses, target, identifier, attribute.api_slug)
        attribute.statuses = choices(items, "status_id")


@tool(title="List attributes", read_only=True)
async def list_attributes(
    target: Annotated[
        Literal["objects", "lists"],
        Field(description="`objects` for an object's attributes, `lists` for a list's"),
    ],
    identifier: Annotated[Slug, Field(description="The object's or list's API slug or UUID")],
    include_options: Annotated[
        bool,
        Field(
            description="Also fetch the options of select attributes and the statuses of "
            "status attributes (one extra Attio call per such attribute)"
        ),
    ] = True,
) -> AttributeList:
    """List the attributes (fields) of an object or a list: slug, title, type, whether
    required, unique, multiselect or writable, and, for select and status attributes,
    their options and statuses (write those by title). Call it before creating or
    updating records or list entries: values are keyed by these slugs. Archived
    attributes are left out. If the object or list is not found, `list_objects` and
    `list_lists` give valid slugs."""
    raw = await call_attio(attio.alist_attributes, target, identifier)
    attributes = [attribute_info(a) for a in raw]
    remember_slugs(
        current_key().connection.workspace_id,
        target,
        identifier,
        sorted(a.api_slug for a in attributes),
    )
    if include_options:
        # One at a time: objects have few select and status attributes, and Attio's rate
        # limit is shared by the whole workspace.
        for attribute in attributes:
            await add_choices(target, identifier, attribute)
    return AttributeList(target=target, identifier=identifier, attributes=attributes)


# --- Record tools -----------------------------------------------------------------------------


class Record(BaseModel):
    record_id: str
    object_id: str
    name: str | None = Field(None, description="The record's name, when it has one")
    created_at: str | None
    web_url: str | None = Field(None, description="The record's page in the Attio app")
    values: dict[str, list[dict[str, Any]]] = Field(
        description="Current values by attribute slug (attributes without a value are left "
        "out; select options and statuses are shown by title)"
    )


class RecordPage(BaseModel):
    records: list[Record]
    offset: int
    limit: int
    next_offset: int | None = Field(
        description="Pass as `offset` to get the next page; null when this was the last"
    )


def record(item: dict) -> Record:
    values = item.get("values") or {}
    return Record(
        record_id=id_part(item, "record_id"),
        object_id=id_part(item, "object_id"),
        name=display_name(values),
        created_at=item.get("created_at"),
        web_url=item.get("web_url"),
        values=compact_values(values),
    )


class SearchHit(BaseModel):
    record_id: str
    object_slug: str
    object_id: str
    record_text: str = Field(description="The record's name or label")
    email_addresses: list[str] | None = None
    phone_numbers: list[str] | None = None
    domains: list[str] | None = None


class SearchResults(BaseModel):
    results: list[SearchHit]


@tool(title="Search records", read_only=True)
async def search_records(
    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description="Text to look for: a name, email address, domain or phone number",
        ),
    ],
    objects: Annotated[
        list[ObjectSlug],
        Field(min_length=1, max_length=10, description="Objects to search in, by slug or UUID"),
    ] = ["people", "companies"],  # noqa: B006 (pydantic copies defaults)
    limit: Annotated[int, Field(ge=1, le=25, description="At most this many results")] = 10,
) -> SearchResults:
    """Find records by name, email address, domain or phone number, fuzzily, across one or
    more objects (people and companies by default), the way Attio's search box does. Returns
    ids and labels only: use `get_record` for the values. At most 25 results and no paging;
    results may lag a few seconds behind recent changes. For exact matches, filters or
    paging use `query_records`. If an object is not found, `list_objects` gives valid
    slugs."""
    hits = await call_attio(attio.asearch_records, query, objects, limit)
    return SearchResults(
        results=[
            SearchHit(
                record_id=id_part(h, "record_id"),
                object_slug=h.get("object_slug") or "",
                object_id=id_part(h, "object_id"),
                record_text=h.get("record_text") or "",
                email_addresses=h.get("email_addresses"),
                phone_numbers=h.get("phone_numbers"),
                domains=h.get("domains"),
            )
            for h in hits
        ]
    )


@tool(title="Query records", read_only=True)
async def query_records(
    object: ObjectSlug,
    filter: Filter = None,
    sorts: Sorts = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> RecordPage:
    """List an object's records with Attio's filters and sorts, a page at a time (default
    25, at most 500 per page; pass `next_offset` back as `offset` for more). Filters and
    sorts use Attio's JSON shapes and attribute slugs; if Attio rejects a slug the error
    lists the valid ones, and `list_attributes` shows slugs, types and options."""
    items = await call_with_slug_help(
        "objects",
        object,
        attio.aquery_records,
        object,
        write=False,
        filter=filter,
        sorts=attio_sorts(sorts),
        limit=limit,
        offset=offset,
    )
    return RecordPage(
        records=[record(r) for r in items],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


@tool(title="Get a record", read_only=True)
async def get_record(object: ObjectSlug, record_id: RecordId) -> Record:
    """Get one record with all its current values, by object and record id. If it is not
    found, check the object slug and find the id with `search_records` or `query_records`."""
    return record(await call_attio(attio.aget_record, object, record_id))


@tool(title="Create a record", read_only=False)
async def create_record(object: ObjectSlug, values: Values) -> Record:
    """Create a record (a person, company, deal or custom object record) from attribute
    values keyed by slug. Fails if a unique attribute (an email address, a domain) already
    belongs to another record: use `upsert_record` to create-or-update instead. Required
    attributes must be given; unknown slugs are answered with the valid ones."""
    item = await call_with_slug_help(
        "objects", object, attio.acreate_record, object, values_for_attio(values), write=True
    )
    return record(item)


@tool(title="Update a record", read_only=False, destructive=True)
async def update_record(
    object: ObjectSlug,
    record_id: RecordId,
    values: Values,
    overwrite_multiselect: Annotated[
        bool,
        Field(
            description="false (default): values given for multiselect attributes are added "
            "to the existing ones; true: they replace them"
        ),
    ] = False,
) -> Record:
    """Change some values of a record; attributes not named keep their values. Single-value
    attributes are replaced. Multiselect attributes (email addresses, tags...) gain the
    given values, unless `overwrite_multiselect` is true, when they are replaced. Unknown
    slugs are answered with the valid ones."""
    call = attio.aoverwrite_record if overwrite_multiselect else attio.aupdate_record
    item = await call_with_slug_help(
        "objects", object, call, object, record_id, values_for_attio(values), write=True
    )
    return record(item)


@tool(title="Create or update a record", read_only=False, destructive=True, idempotent=True)
async def upsert_record(
    object: ObjectSlug,
    matching_attribute: Annotated[
        AttributeKey,
        Field(
            description="A unique attribute to match on, e.g. `email_addresses` for people "
            "or `domains` for companies; `values` must include it"
        ),
    ],
    values: Values,
) -> Record:
    """Create a record, or update the one whose unique `matching_attribute` matches (Attio's
    "assert"). Safe to repeat. On update, multiselect values given replace the existing
    ones. Fails if more than one record matches. Unknown slugs are answered with the valid
    ones; `list_attributes` shows which attributes are unique."""
    item = await call_with_slug_help(
        "objects",
        object,
        attio.aassert_record,
        object,
        matching_attribute,
        values_for_attio(values),
        write=True,
    )
    return record(item)


@tool(title="Delete a record", read_only=False, destructive=True, idempotent=True)
async def delete_record(object: ObjectSlug, record_id: RecordId) -> Deleted:
    """Delete a record for good, with its list entries, notes and comments; Attio cannot
    undo this. Confirm with the user first. A 404 means it is already gone or the id is
    wrong."""
    await call_attio(attio.adelete_record, object, record_id, write=True)
    return deleted("record", record_id)


class RecordEntry(BaseModel):
    list_id: str
    list_api_slug: str
    entry_id: str
    created_at: str | None


class RecordEntries(BaseModel):
    entries: list[RecordEntry]
    offset: int
    limit: int
    next_offset: int | None


@tool(title="List a record's list entries", read_only=True)
async def list_record_entries(
    object: ObjectSlug,
    record_id: RecordId,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> RecordEntries:
    """List the lists a record is in: one row per list entry, with the list's slug and the
    entry id (use them with `query_list_entries`, `update_list_entry` or
    `remove_from_list`). Paged: pass `next_offset` back as `offset` for more."""
    items = await call_attio(
        attio.alist_record_entries, object, record_id, limit=limit, offset=offset
    )
    return RecordEntries(
        entries=[
            RecordEntry(
                list_id=str(e.get("list_id") or ""),
                list_api_slug=str(e.get("list_api_slug") or ""),
                entry_id=str(e.get("entry_id") or ""),
                created_at=e.get("created_at"),
            )
            for e in items
        ],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


# --- Note tools -------------------------------------------------------------------------------

NOTE_PREVIEW_CHARS = 1000


class Note(BaseModel):
    note_id: str
    parent_object: str
    parent_record_id: str
    title: str
    created_at: str | None
    created_by: dict[str, Any] | None = Field(None, description="The actor who wrote it")
    content_plaintext: str
    content_markdown: str | None = Field(None, description="Only from `get_note`")
    content_truncated: bool = Field(
        False, description="True when `content_plaintext` is cut short: use `get_note`"
    )


class NoteList(BaseModel):
    notes: list[Note]
    offset: int
    limit: int
    next_offset: int | None


def note(item: dict, *, preview: bool = False) -> Note:
    text = item.get("content_plaintext") or ""
    truncated = preview and len(text) > NOTE_PREVIEW_CHARS
    return Note(
        note_id=id_part(item, "note_id"),
        parent_object=item.get("parent_object") or "",
        parent_record_id=item.get("parent_record_id") or "",
        title=item.get("title") or "",
        created_at=item.get("created_at"),
        created_by=item.get("created_by_actor"),
        content_plaintext=text[:NOTE_PREVIEW_CHARS] if truncated else text,
        content_markdown=None if preview else item.get("content_markdown"),
        content_truncated=truncated,
    )


@tool(title="List notes on a record", read_only=True)
async def list_notes(
    object: ObjectSlug,
    record_id: RecordId,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size (at most 50)")] = 10,
    offset: Offset = 0,
) -> NoteList:
    """List the notes on a record: title, author, date and the plaintext content (cut at
    1000 characters; `get_note` gives the whole note, also as markdown). Paged, at most 50
    a page: pass `next_offset` back as `offset` for more."""
    items = await call_attio(attio.alist_notes, object, record_id, limit=limit, offset=offset)
    return NoteList(
        notes=[note(n, preview=True) for n in items],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


@tool(title="Get a note", read_only=True)
async def get_note(note_id: Annotated[Uuid, Field(description="The note's UUID")]) -> Note:
    """Get one note with its whole content, as plaintext and as markdown. Find note ids with
    `list_notes`."""
    return note(await call_attio(attio.aget_note, note_id))


@tool(title="Create a note", read_only=False)
async def create_note(
    # Named as notes come back. `object` and `record_id`, the names before, are still
    # accepted from clients set up with them (the schema shows only the new names).
    parent_object: Annotated[
        ObjectSlug, Field(validation_alias=AliasChoices("parent_object", "object"))
    ],
    parent_record_id: Annotated[
        RecordId, Field(validation_alias=AliasChoices("parent_record_id", "record_id"))
    ],
    title: Annotated[str, Field(min_length=1, max_length=500, description="The note's title")],
    content: Annotated[str, Field(min_length=1, max_length=100_000, description="The note's body")],
    format: Annotated[
        Literal["plaintext", "markdown"],
        Field(description="`markdown` renders headings, lists, bold and links"),
    ] = "plaintext",
) -> Note:
    """Add a note to a record (a person, company, deal...), named by `parent_object` (its
    object's slug) and `parent_record_id`, as notes come back; in plaintext or markdown.
    Notes cannot be edited through Attio's API afterwards, only deleted. If the record is
    not found, check the object slug and record id."""
    item = await call_attio(
        attio.acreate_note, parent_object, parent_record_id, title, content, format, write=True
    )
    return note(item)


@tool(title="Delete a note", read_only=False, destructive=True, idempotent=True)
async def delete_note(note_id: Annotated[Uuid, Field(description="The note's UUID")]) -> Deleted:
    """Delete a note for good; Attio cannot undo this. Confirm with the user first. A 404
    means it is already gone or the id is wrong."""
    await call_attio(attio.adelete_note, note_id, write=True)
    return deleted("note", note_id)


# --- Task tools -------------------------------------------------------------------------------

Member = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=MEMBER_PATTERN,
        description="A workspace member's UUID or email address (see `list_workspace_members`)",
    ),
]
Deadline = Annotated[
    datetime | None,
    Field(description="ISO 8601 date or date-time, e.g. 2025-06-30T17:00:00Z (UTC if no zone)"),
]


class LinkedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: ObjectSlug
    record_id: RecordId


LinkedRecords = Annotated[
    list[LinkedRecord], Field(max_length=50, description="Records the task is about")
]
Assignees = Annotated[list[Member], Field(max_length=20, description="Who should do the task")]


class Task(BaseModel):
    task_id: str
    content: str
    deadline_at: str | None
    is_completed: bool
    linked_records: list[dict[str, str]] = Field(
        description="{target_object_id, target_record_id} of each linked record"
    )
    assignee_ids: list[str] = Field(description="Workspace member ids")
    created_at: str | None
    created_by: dict[str, Any] | None = None


class TaskList(BaseModel):
    tasks: list[Task]
    offset: int
    limit: int
    next_offset: int | None


def task(item: dict) -> Task:
    return Task(
        task_id=id_part(item, "task_id"),
        content=item.get("content_plaintext") or "",
        deadline_at=item.get("deadline_at"),
        is_completed=bool(item.get("is_completed")),
        linked_records=[
            {
                "target_object_id": str(r.get("target_object_id") or ""),
                "target_record_id": str(r.get("target_record_id") or ""),
            }
            for r in item.get("linked_records") or []
        ],
        assignee_ids=[str(a.get("referenced_actor_id")) for a in item.get("assignees") or []],
        created_at=item.get("created_at"),
        created_by=item.get("created_by_actor"),
    )


def attio_timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def attio_assignee(member: str) -> dict[str, str]:
    if "@" in member:
        return {"workspace_member_email_address": member}
    return {"referenced_actor_type": "workspace-member", "referenced_actor_id": member}


def attio_linked_record(linked: LinkedRecord) -> dict[str, str]:
    return {"target_object": linked.object, "target_record_id": linked.record_id}


@tool(title="List tasks", read_only=True)
async def list_tasks(
    linked_object: Annotated[
        ObjectSlug | None, Field(description="With `linked_record_id`: tasks about that record")
    ] = None,
    linked_record_id: Annotated[
        Uuid | None, Field(description="With `linked_object`: tasks about that record")
    ] = None,
    assignee: Annotated[Member | None, Field(description="Only tasks assigned to")] = None,
    is_completed: Annotated[
        bool | None, Field(description="true: only done tasks; false: only open ones")
    ] = None,
    newest_first: Annotated[bool, Field(description="Newest tasks first")] = False,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> TaskList:
    """List tasks, optionally only those about one record (give `linked_object` and
    `linked_record_id` together), assigned to one member (UUID or email) or open/done.
    Oldest first unless `newest_first`. Paged (default 25, at most 500): pass
    `next_offset` back as `offset` for more."""
    if (linked_object is None) != (linked_record_id is None):
        raise fail(
            "Give `linked_object` and `linked_record_id` together (the record's object slug "
            "and id), or neither.",
            "invalid_arguments",
        )
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params["sort"] = "created_at:desc" if newest_first else "created_at:asc"
    if linked_object is not None:
        params.update(linked_object=linked_object, linked_record_id=linked_record_id)
    if assignee is not None:
        params["assignee"] = assignee
    if is_completed is not None:
        params["is_completed"] = "true" if is_completed else "false"
    items = await call_attio(attio.alist_tasks, params)
    return TaskList(
        tasks=[task(t) for t in items],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


@tool(title="Create a task", read_only=False)
async def create_task(
    content: Annotated[
        str, Field(min_length=1, max_length=2000, description="What to do, in plaintext")
    ],
    deadline_at: Deadline = None,
    assignees: Assignees = [],  # noqa: B006 (pydantic copies defaults)
    linked_records: LinkedRecords = [],  # noqa: B006
    is_completed: Annotated[bool, Field(description="Create it as already done")] = False,
) -> Task:
    """Create a task: plaintext content (at most 2000 characters; Attio's API cannot change
    it later), an optional deadline, assignees (member UUIDs or email addresses, see
    `list_workspace_members`) and the records it is about. A 404 names the member or
    record that was not found."""
    data = {
        "content": content,
        "format": "plaintext",
        "deadline_at": attio_timestamp(deadline_at),
        "is_completed": is_completed,
        "linked_records": [attio_linked_record(r) for r in linked_records],
        "assignees": [attio_assignee(m) for m in assignees],
    }
    return task(await call_attio(attio.acreate_task, data, write=True))


@tool(title="Update a task", read_only=False, destructive=True, idempotent=True)
async def update_task(
    task_id: Annotated[Uuid, Field(description="The task's UUID")],
    is_completed: Annotated[bool | None, Field(description="Mark done (true) or open")] = None,
    deadline_at: Deadline = None,
    clear_deadline: Annotated[bool, Field(description="Remove the deadline")] = False,
    assignees: Annotated[
        list[Member] | None,
        Field(max_length=20, description="Replaces the assignees ([] to unassign)"),
    ] = None,
    linked_records: Annotated[
        list[LinkedRecord] | None,
        Field(max_length=50, description="Replaces the linked records ([] to unlink all)"),
    ] = None,
) -> Task:
    """Mark a task done or open, change or clear its deadline, or replace its assignees or
    linked records. Only what is given changes. The content cannot be changed through
    Attio's API: create a new task and delete this one instead."""
    if deadline_at is not None and clear_deadline:
        raise fail("Give `deadline_at` or `clear_deadline`, not both.", "invalid_arguments")
    data: dict[str, Any] = {}
    if is_completed is not None:
        data["is_completed"] = is_completed
    if clear_deadline:
        data["deadline_at"] = None
    elif deadline_at is not None:
        data["deadline_at"] = attio_timestamp(deadline_at)
    if assignees is not None:
        data["assignees"] = [attio_assignee(m) for m in assignees]
    if linked_records is not None:
        data["linked_records"] = [attio_linked_record(r) for r in linked_records]
    if not data:
        raise fail(
            "Nothing to change: give `is_completed`, `deadline_at`, `clear_deadline`, "
            "`assignees` or `linked_records`.",
            "invalid_arguments",
        )
    return task(await call_attio(attio.aupdate_task, task_id, data, write=True))


@tool(title="Delete a task", read_only=False, destructive=True, idempotent=True)
async def delete_task(task_id: Annotated[Uuid, Field(description="The task's UUID")]) -> Deleted:
    """Delete a task for good; Attio cannot undo this (to close a task, use `update_task`
    with is_completed=true). A 404 means it is already gone or the id is wrong."""
    await call_attio(attio.adelete_task, task_id, write=True)
    return deleted("task", task_id)


# --- List tools -------------------------------------------------------------------------------


class ListInfo(BaseModel):
    list_id: str
    api_slug: str
    name: str
    parent_object: list[str] = Field(description="The objects whose records the list holds")
    workspace_access: str | None
    created_at: str | None


class ListList(BaseModel):
    lists: list[ListInfo]


def list_info(item: dict) -> ListInfo:
    return ListInfo(
        list_id=id_part(item, "list_id"),
        api_slug=item.get("api_slug") or "",
        name=item.get("name") or "",
        parent_object=list(item.get("parent_object") or []),
        workspace_access=item.get("workspace_access"),
        created_at=item.get("created_at"),
    )


class Entry(BaseModel):
    entry_id: str
    list_id: str
    parent_object: str
    parent_record_id: str
    created_at: str | None
    entry_values: dict[str, list[dict[str, Any]]] = Field(
        description="The entry's own values by list attribute slug (the record's values "
        "are on the record: `get_record`)"
    )


class EntryPage(BaseModel):
    entries: list[Entry]
    offset: int
    limit: int
    next_offset: int | None


def entry(item: dict) -> Entry:
    return Entry(
        entry_id=id_part(item, "entry_id"),
        list_id=id_part(item, "list_id"),
        parent_object=item.get("parent_object") or "",
        parent_record_id=item.get("parent_record_id") or "",
        created_at=item.get("created_at"),
        entry_values=compact_values(item.get("entry_values")),
    )


EntryValues = Annotated[
    dict[AttributeKey, Any],
    Field(
        max_length=200,
        description="Values of the list's own attributes keyed by slug, in Attio's input "
        'shapes, e.g. {"stage": "Qualified", "priority": "High"}; see `list_attributes` '
        "with target `lists`",
    ),
]


@tool(title="List lists", read_only=True)
async def list_lists() -> ListList:
    """List the workspace's lists (pipelines, boards) with their slugs and the objects whose
    records they hold. Use a slug as `list` in the list tools and `list_attributes` (target
    `lists`) for a list's own fields."""
    return ListList(lists=[list_info(x) for x in await call_attio(attio.alist_lists)])


@tool(title="Get a list", read_only=True)
async def get_list(list: ListSlug) -> ListInfo:
    """Get one list by slug or UUID: its name and the objects whose records it holds. If it
    is not found, `list_lists` gives valid slugs."""
    return list_info(await call_attio(attio.aget_list, list))


@tool(title="Query list entries", read_only=True)
async def query_list_entries(
    list: ListSlug,
    filter: Filter = None,
    sorts: Sorts = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> EntryPage:
    """List a list's entries (the records in it with the list's own values, e.g. a
    pipeline stage), with Attio's filters and sorts on the list's attributes, a page at a
    time (default 25, at most 500; pass `next_offset` back as `offset` for more). Unknown
    attribute slugs are answered with the valid ones."""
    items = await call_with_slug_help(
        "lists",
        list,
        attio.aquery_entries,
        list,
        write=False,
        filter=filter,
        sorts=attio_sorts(sorts),
        limit=limit,
        offset=offset,
    )
    return EntryPage(
        entries=[entry(e) for e in items],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


@tool(title="Add a record to a list", read_only=False)
async def add_to_list(
    list: ListSlug,
    object: ObjectSlug,
    record_id: RecordId,
    entry_values: EntryValues = {},  # noqa: B006 (pydantic copies defaults)
) -> Entry:
    """Add a record to a list, optionally with values for the list's own attributes (e.g.
    a stage). The record must be of an object the list holds (`get_list`). Attio allows
    the same record in a list more than once, so check `list_record_entries` first if that
    matters. Unknown attribute slugs are answered with the valid ones."""
    item = await call_with_slug_help(
        "lists",
        list,
        attio.acreate_entry,
        list,
        object,
        record_id,
        values_for_attio(entry_values),
        write=True,
    )
    return entry(item)


@tool(title="Update a list entry", read_only=False, destructive=True)
async def update_list_entry(
    list: ListSlug,
    entry_id: EntryId,
    entry_values: Annotated[EntryValues, Field(min_length=1)],
    overwrite_multiselect: Annotated[
        bool,
        Field(
            description="false (default): multiselect values given are added; true: they "
            "replace the existing ones"
        ),
    ] = False,
) -> Entry:
    """Change some of a list entry's own values (e.g. move it to another stage); attributes
    not named keep their values. Find entry ids with `query_list_entries` or
    `list_record_entries`. Unknown attribute slugs are answered with the valid ones."""
    call = attio.aoverwrite_entry if overwrite_multiselect else attio.aupdate_entry
    item = await call_with_slug_help(
        "lists", list, call, list, entry_id, values_for_attio(entry_values), write=True
    )
    return entry(item)


@tool(title="Remove a record from a list", read_only=False, destructive=True, idempotent=True)
async def remove_from_list(list: ListSlug, entry_id: EntryId) -> Deleted:
    """Remove an entry from a list, losing its list values (the record itself stays). Attio
    cannot undo this. Find entry ids with `list_record_entries` or `query_list_entries`."""
    await call_attio(attio.adelete_entry, list, entry_id, write=True)
    return deleted("list entry", entry_id)


# --- Workspace member tools -------------------------------------------------------------------


class WorkspaceMember(BaseModel):
    workspace_member_id: str
    first_name: str | None
    last_name: str | None
    email_address: str | None
    access_level: str | None
    avatar_url: str | None
    created_at: str | None


class WorkspaceMemberList(BaseModel):
    members: list[WorkspaceMember]


def workspace_member(item: dict) -> WorkspaceMember:
    return WorkspaceMember(
        workspace_member_id=id_part(item, "workspace_member_id"),
        first_name=item.get("first_name"),
        last_name=item.get("last_name"),
        email_address=item.get("email_address"),
        access_level=item.get("access_level"),
        avatar_url=item.get("avatar_url"),
        created_at=item.get("created_at"),
    )


@tool(title="List workspace members", read_only=True)
async def list_workspace_members() -> WorkspaceMemberList:
    """List the people in the Attio workspace: id, name, email address and access level.
    Use an id or email address to assign tasks or to filter by owner."""
    items = await call_attio(attio.alist_workspace_members)
    return WorkspaceMemberList(members=[workspace_member(m) for m in items])


@tool(title="Get a workspace member", read_only=True)
async def get_workspace_member(
    workspace_member_id: Annotated[Uuid, Field(description="The member's UUID")],
) -> WorkspaceMember:
    """Get one workspace member by id (e.g. a task assignee or a record's owner). If it is
    not found, `list_workspace_members` lists everyone."""
    return workspace_member(await call_attio(attio.aget_workspace_member, workspace_member_id))


# --- Comment tools ----------------------------------------------------------------------------


class Comment(BaseModel):
    comment_id: str
    thread_id: str
    content: str
    author: dict[str, Any] | None
    created_at: str | None


class Thread(BaseModel):
    thread_id: str
    created_at: str | None
    comments: list[Comment]


class ThreadList(BaseModel):
    threads: list[Thread]
    offset: int
    limit: int
    next_offset: int | None


def comment(item: dict) -> Comment:
    return Comment(
        comment_id=id_part(item, "comment_id"),
        thread_id=str(item.get("thread_id") or ""),
        content=item.get("content_plaintext") or "",
        author=item.get("author"),
        created_at=item.get("created_at"),
    )


def comment_target(
    object: str | None, record_id: str | None, list: str | None, entry_id: str | None
) -> dict[str, dict[str, str]]:
    """Where a comment goes: a record or a list entry, exactly one, given in full."""
    on_record = object is not None or record_id is not None
    on_entry = list is not None or entry_id is not None
    if on_record == on_entry:
        raise fail(
            "Name one place: a record (`object` and `record_id`) or a list entry (`list` "
            "and `entry_id`).",
            "invalid_arguments",
        )
    if on_record:
        if object is None or record_id is None:
            raise fail("Give both `object` and `record_id`.", "invalid_arguments")
        return {"record": {"object": object, "record_id": record_id}}
    if list is None or entry_id is None:
        raise fail("Give both `list` and `entry_id`.", "invalid_arguments")
    return {"entry": {"list": list, "entry_id": entry_id}}


@tool(title="List comment threads", read_only=True)
async def list_threads(
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="Threads on this record")] = None,
    list: Annotated[ListSlug | None, Field(description="With `entry_id`")] = None,
    entry_id: Annotated[Uuid | None, Field(description="Threads on this list entry")] = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size (at most 50)")] = 10,
    offset: Offset = 0,
) -> ThreadList:
    """List the comment threads, with their comments, on a record (`object` and
    `record_id`) or on a list entry (`list` and `entry_id`). Paged, at most 50 threads a
    page: pass `next_offset` back as `offset` for more. Reply with `create_comment` and a
    `thread_id`."""
    target = comment_target(object, record_id, list, entry_id)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if "record" in target:
        params.update(target["record"])
    else:
        params.update(target["entry"])
    items = await call_attio(attio.alist_threads, params)
    return ThreadList(
        threads=[
            Thread(
                thread_id=id_part(t, "thread_id"),
                created_at=t.get("created_at"),
                comments=[comment(c) for c in t.get("comments") or []],
            )
            for t in items
        ],
        offset=offset,
        limit=limit,
        next_offset=next_offset(len(items), limit, offset),
    )


async def own_member_id() -> str:
    """The Attio workspace member who connected this workspace: comments are theirs."""
    connection = current_key().connection
    if connection.attio_member_id:
        return connection.attio_member_id
    identity = await call_attio(attio.aget_self)
    if not identity.active:
        raise reconnect_error(connection)
    if not identity.member_id:
        raise fail(
            "Attio does not say which workspace member this connection belongs to, so the "
            "comment cannot be signed. Reconnect the workspace at the portal and try again.",
            "no_member",
        )
    return identity.member_id


@tool(title="Add a comment", read_only=False)
async def create_comment(
    content: Annotated[
        str, Field(min_length=1, max_length=10_000, description="The comment, in plaintext")
    ],
    thread_id: Annotated[
        Uuid | None, Field(description="Reply in this thread (from `list_threads`)")
    ] = None,
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="Start a thread on this record")] = None,
    list: Annotated[ListSlug | None, Field(description="With `entry_id`")] = None,
    entry_id: Annotated[Uuid | None, Field(description="Start a thread on this list entry")] = None,
) -> Comment:
    """Comment on a record or a list entry (starting a new thread), or reply in an
    existing thread (`thread_id`): give exactly one of these. The comment is posted as the
    Attio member who connected this workspace to the portal. Plaintext only; @mentions
    are not supported by Attio's API."""
    if thread_id is not None:
        if any(x is not None for x in (object, record_id, list, entry_id)):
            raise fail(
                "Give `thread_id` alone to reply, or a record or list entry (without "
                "`thread_id`) to start a thread.",
                "invalid_arguments",
            )
        target: dict[str, Any] = {"thread_id": thread_id}
    else:
        target = comment_target(object, record_id, list, entry_id)
    author = {"type": "workspace-member", "id": await own_member_id()}
    data = {"format": "plaintext", "content": content, "author": author, **target}
    return comment(await call_attio(attio.acreate_comment, data, write=True))

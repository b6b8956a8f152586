"""Changing the workspace's shape: objects, attributes, select options and statuses, and
lists created and updated; and the history of one attribute's values on a record or a
list entry."""

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connections import attio
from connections.openapi import load_attio_spec

from ..auth import Caller
from . import tool
from ._arguments import UUID_PATTERN, AttributeKey, ListSlug, ObjectSlug, Offset, Slug, Uuid
from ._call import ToolFailure, call_attio, forget_slugs, known_slugs
from ._results import id_part, meaning, paged
from .comments import comment_target
from .lists import ListInfo, list_info
from .schema import AttributeInfo, ObjectInfo, attribute_info

# --- Arguments ---------------------------------------------------------------------------

Target = Annotated[Literal["objects", "lists"], Field(description="Object or list")]
Identifier = Annotated[Slug, Field(description="Its slug or UUID")]
Attribute = Annotated[AttributeKey, Field(description="Slug or UUID")]
NewSlug = Annotated[Slug, Field(description="snake_case slug")]
Title = Annotated[str, Field(min_length=1, max_length=256, description="Display name")]
Kind = Annotated[
    Literal["select", "status"],
    Field(description="Option or status"),
]
# An ISO 8601 duration (P7D, PT36H, P1Y2M): Attio checks it more closely.
DURATION_PATTERN = r"^P(\d+[YMWD])*(T(\d+([.,]\d+)?[HMS])+)?$"
Celebration = Annotated[bool | None, Field(description="Status only")]
TargetTime = Annotated[
    str | None,
    Field(pattern=DURATION_PATTERN, description="Status only: duration"),
]
AttributeType = Literal[
    "text",
    "number",
    "checkbox",
    "currency",
    "date",
    "timestamp",
    "rating",
    "status",
    "select",
    "record-reference",
    "actor-reference",
    "location",
    "domain",
    "email-address",
    "phone-number",
]
AllowedObjects = Annotated[
    list[AttributeKey] | None,
    Field(min_length=1, max_length=20, description="Record-reference only"),
]


@functools.cache
def currency_codes() -> list[str]:
    """The default currencies Attio's document allows a currency attribute."""
    operation = load_attio_spec()["paths"]["/v2/{target}/{identifier}/attributes"]["post"]
    data = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
    currency = data["properties"]["config"]["properties"]["currency"]
    return sorted(currency["properties"]["default_currency_code"]["enum"])


DefaultCurrency = Annotated[
    str | None, Field(pattern=r"^[A-Z]{3}$", description="Currency only: e.g. EUR")
]
CurrencyDisplay = Annotated[
    Literal["code", "name", "narrowSymbol", "symbol"] | None,
    Field(description="Currency only"),
]
Access = Literal["full-access", "read-and-write", "read-only"]


class MemberAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_member_id: Uuid
    level: Access


# Attio's document types `workspace_access` as string or null but leaves null out of its
# enum, so a private list (null) is not offered: give a member full access instead.
WorkspaceAccess = Annotated[Access, Field(description="For all members")]
MembersAccess = Annotated[
    list[MemberAccess] | None,
    Field(max_length=100, description="Per member (replaces)"),
]


def changes(**fields: Any) -> dict[str, Any]:
    """The fields given (not None); at least one, or there is nothing to send."""
    data = {name: value for name, value in fields.items() if value is not None}
    if not data:
        raise ToolFailure("Nothing to change: give at least one new value.", "invalid_arguments")
    return data


def only_for(kind: str, actual: str | None, **given: Any) -> None:
    """Refuse arguments that apply to another kind of attribute or option."""
    named = [name for name, value in given.items() if value is not None]
    if named and actual is not None and actual != kind:
        raise ToolFailure(
            f"`{'`, `'.join(named)}` only apply to {kind} attributes or options, not {actual}.",
            "invalid_arguments",
        )


def currency_config(code: str | None, display: str | None) -> dict[str, str] | None:
    if code is None and display is None:
        return None
    if code is None:
        raise ToolFailure(
            "Give `default_currency` with `currency_display`: Attio sets both together.",
            "invalid_arguments",
        )
    if code not in currency_codes():
        raise ToolFailure(
            f"Attio does not take {code} as a default currency; it takes "
            f"{', '.join(currency_codes())}.",
            "invalid_arguments",
        )
    return {"default_currency_code": code, "display_type": display or "symbol"}


def attribute_config(
    allowed_objects: list[str] | None, currency: dict[str, str] | None
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if allowed_objects is not None:
        config["record_reference"] = {"allowed_objects": allowed_objects}
    if currency is not None:
        config["currency"] = currency
    return config


# --- Attio calls with slug help, and the cache they make stale ---------------------------


async def call_on_attribute(
    caller: Caller,
    target: str,
    identifier: str,
    attribute: str,
    call: Any,
    *args: Any,
    write: bool,
    **kwargs: Any,
) -> Any:
    """`call_attio` for an attribute's endpoint: when Attio does not find the attribute,
    the error lists the valid slugs (Attio's 404 names no alternatives)."""

    async def attempt(token: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await call(token, *args, **kwargs)
        except attio.AttioError as e:
            if e.status != 404:
                raise
            slugs = await known_slugs(caller, token, target, identifier)
            # No slugs: the object or list itself is unknown; the attribute there: the
            # 404 is about something else (a record, an option).
            if not slugs or attribute in slugs:
                raise
            noun = "object" if target == "objects" else "list"
            raise attio.AttioError(
                f"{e.message} The {noun} `{identifier}` has these attribute slugs: "
                f"{', '.join(slugs)}.",
                status=e.status,
                code=e.code,
            ) from None

    return await call_attio(caller, attempt, *args, write=write, **kwargs)


async def schema_write(caller: Caller, call: Any, *args: Any, **kwargs: Any) -> Any:
    """A schema write; afterwards the connection's cached slugs are stale."""
    try:
        return await call(caller, *args, **kwargs)
    finally:
        # Also after a failure: Attio may have applied a write whose answer was lost.
        forget_slugs(caller.connection.pk)


# --- Objects ---------------------------------------------------------------------------


def object_info(item: dict) -> ObjectInfo:
    return ObjectInfo(
        object_id=id_part(item, "object_id"),
        api_slug=item.get("api_slug") or "",
        singular_noun=item.get("singular_noun"),
        plural_noun=item.get("plural_noun"),
        created_at=item.get("created_at"),
    )


Noun = Annotated[str, Field(min_length=1, max_length=128)]


@tool(title="Create an object", read_only=False)
async def create_object(
    caller: Caller,
    api_slug: NewSlug,
    singular_noun: Annotated[Noun, Field(description="e.g. Project")],
    plural_noun: Annotated[Noun, Field(description="e.g. Projects")],
) -> ObjectInfo:
    """Create a custom object; then add attributes with `create_attribute`."""
    data = {"api_slug": api_slug, "singular_noun": singular_noun, "plural_noun": plural_noun}
    return object_info(
        await schema_write(caller, call_attio, attio.acreate_object, data, write=True)
    )


@tool(title="Update an object", read_only=False, destructive=True)
async def update_object(
    caller: Caller,
    object: Annotated[ObjectSlug, Field(description="Its slug or UUID")],
    api_slug: Annotated[NewSlug | None, Field(description="New slug")] = None,
    singular_noun: Annotated[Noun | None, Field(description="Singular name")] = None,
    plural_noun: Annotated[Noun | None, Field(description="Plural name")] = None,
) -> ObjectInfo:
    """Rename an object or change its slug (the old slug stops working)."""
    data = changes(api_slug=api_slug, singular_noun=singular_noun, plural_noun=plural_noun)
    item = await schema_write(caller, call_attio, attio.aupdate_object, object, data, write=True)
    return object_info(item)


# --- Attributes --------------------------------------------------------------------------


@tool(title="Create an attribute", read_only=False)
async def create_attribute(
    caller: Caller,
    target: Target,
    identifier: Identifier,
    title: Title,
    api_slug: NewSlug,
    type: Annotated[AttributeType, Field(description="What it holds")],
    description: Annotated[str | None, Field(max_length=2000, description="Help text")] = None,
    is_required: Annotated[bool, Field(description="Required")] = False,
    is_unique: Annotated[bool, Field(description="Unique")] = False,
    is_multiselect: Annotated[bool, Field(description="Multiselect")] = False,
    allowed_objects: AllowedObjects = None,
    default_currency: DefaultCurrency = None,
    currency_display: CurrencyDisplay = None,
) -> AttributeInfo:
    """Add an attribute to an object or list; add select/status options with
    `create_option`."""
    only_for("record-reference", type, allowed_objects=allowed_objects)
    only_for("currency", type, default_currency=default_currency, currency_display=currency_display)
    currency = currency_config(default_currency, currency_display)
    data = {
        "title": title,
        "description": description,
        "api_slug": api_slug,
        "type": type,
        "is_required": is_required,
        "is_unique": is_unique,
        "is_multiselect": is_multiselect,
        "config": attribute_config(allowed_objects, currency),
    }
    item = await schema_write(
        caller, call_attio, attio.acreate_attribute, target, identifier, data, write=True
    )
    return attribute_info(item)


@tool(title="Update an attribute", read_only=False, destructive=True)
async def update_attribute(
    caller: Caller,
    target: Target,
    identifier: Identifier,
    attribute: Attribute,
    title: Annotated[Title | None, Field(description="New title")] = None,
    description: Annotated[str | None, Field(max_length=2000, description='"" clears it')] = None,
    api_slug: Annotated[NewSlug | None, Field(description="New API slug")] = None,
    is_required: Annotated[bool | None, Field(description="Required")] = None,
    is_unique: Annotated[bool | None, Field(description="Unique")] = None,
    archived: Annotated[
        bool | None, Field(description="true archives it, false restores it")
    ] = None,
    allowed_objects: AllowedObjects = None,
    default_currency: DefaultCurrency = None,
    currency_display: CurrencyDisplay = None,
) -> AttributeInfo:
    """Change or archive an attribute of an object or list."""
    config = attribute_config(allowed_objects, currency_config(default_currency, currency_display))
    data = changes(
        title=title,
        description=description,
        api_slug=api_slug,
        is_required=is_required,
        is_unique=is_unique,
        is_archived=archived,
        config=config or None,
    )
    if data.get("description") == "":
        data["description"] = None
    item = await schema_write(
        caller,
        call_on_attribute,
        target,
        identifier,
        attribute,
        attio.aupdate_attribute,
        target,
        identifier,
        attribute,
        data,
        write=True,
    )
    return attribute_info(item)


# --- Select options and statuses -------------------------------------------------------


class Choice(BaseModel):
    id: str
    title: str
    is_archived: bool
    celebration_enabled: bool | None = None
    target_time_in_status: str | None = None


def choice(item: dict, kind: str) -> Choice:
    return Choice(
        id=id_part(item, "option_id" if kind == "select" else "status_id"),
        title=item.get("title") or "",
        is_archived=bool(item.get("is_archived")),
        celebration_enabled=item.get("celebration_enabled"),
        target_time_in_status=item.get("target_time_in_status"),
    )


def status_fields(kind: str, celebration: bool | None, target_time: str | None) -> dict:
    only_for("status", kind, celebration=celebration, target_time=target_time)
    fields: dict[str, Any] = {}
    if celebration is not None:
        fields["celebration_enabled"] = celebration
    if target_time is not None:
        fields["target_time_in_status"] = target_time
    return fields


@tool(title="Add a select option or status", read_only=False)
async def create_option(
    caller: Caller,
    target: Target,
    identifier: Identifier,
    attribute: Attribute,
    kind: Kind,
    title: Title,
    celebration: Celebration = None,
    target_time: TargetTime = None,
) -> Choice:
    """Add an option to a select attribute or a status to a status attribute."""
    data = {"title": title, **status_fields(kind, celebration, target_time)}
    call = attio.acreate_select_option if kind == "select" else attio.acreate_status
    item = await schema_write(
        caller,
        call_on_attribute,
        target,
        identifier,
        attribute,
        call,
        target,
        identifier,
        attribute,
        data,
        write=True,
    )
    return choice(item, kind)


async def choice_id(
    caller: Caller, target: str, identifier: str, attribute: str, kind: str, option: str
) -> str:
    """The UUID of an option or status named by title (or already by UUID): titles may hold
    any character, so only Attio's own id goes into the path."""
    if re.fullmatch(UUID_PATTERN, option):
        return option
    call = attio.alist_select_options if kind == "select" else attio.alist_statuses
    items = await call_on_attribute(
        caller,
        target,
        identifier,
        attribute,
        call,
        target,
        identifier,
        attribute,
        write=False,
        show_archived=True,
    )
    found = [c for c in items if c.get("title") == option] or [
        c for c in items if str(c.get("title") or "").casefold() == option.casefold()
    ]
    if not found:
        noun = "option" if kind == "select" else "status"
        titles = ", ".join(str(c.get("title")) for c in items) or "none"
        raise ToolFailure(
            f"`{attribute}` has no {noun} titled “{option}”. Its {noun} titles: {titles}.",
            "not_found",
        )
    return choice(found[0], kind).id


@tool(title="Update a select option or status", read_only=False, destructive=True)
async def update_option(
    caller: Caller,
    target: Target,
    identifier: Identifier,
    attribute: Attribute,
    kind: Kind,
    option: Annotated[
        str, Field(min_length=1, max_length=256, description="Current title or UUID")
    ],
    title: Annotated[Title | None, Field(description="New title")] = None,
    archived: Annotated[
        bool | None, Field(description="true archives it, false restores it")
    ] = None,
    celebration: Celebration = None,
    target_time: TargetTime = None,
) -> Choice:
    """Rename or archive a select option or status."""
    data = changes(
        title=title, is_archived=archived, **status_fields(kind, celebration, target_time)
    )
    choice_uuid = await choice_id(caller, target, identifier, attribute, kind, option)
    call = attio.aupdate_select_option if kind == "select" else attio.aupdate_status
    item = await schema_write(
        caller,
        call_on_attribute,
        target,
        identifier,
        attribute,
        call,
        target,
        identifier,
        attribute,
        choice_uuid,
        data,
        write=True,
    )
    return choice(item, kind)


# --- Lists -------------------------------------------------------------------------------


def member_access(members: list[MemberAccess] | None) -> list[dict[str, str]] | None:
    return None if members is None else [m.model_dump() for m in members]


@tool(title="Create a list", read_only=False)
async def create_list(
    caller: Caller,
    name: Title,
    api_slug: NewSlug,
    parent_object: Annotated[ObjectSlug, Field(description="Object of its records")],
    workspace_access: WorkspaceAccess = "full-access",
    members: MembersAccess = None,
) -> ListInfo:
    """Create a list (pipeline) of one object's records; someone must have full access."""
    data = {
        "name": name,
        "api_slug": api_slug,
        "parent_object": parent_object,
        "workspace_access": workspace_access,
        "workspace_member_access": member_access(members) or [],
    }
    return list_info(await schema_write(caller, call_attio, attio.acreate_list, data, write=True))


@tool(title="Update a list", read_only=False, destructive=True)
async def update_list(
    caller: Caller,
    list: Annotated[ListSlug, Field(description="Its slug or UUID")],
    name: Annotated[Title | None, Field(description="New name")] = None,
    api_slug: Annotated[NewSlug | None, Field(description="New API slug")] = None,
    workspace_access: Annotated[Access | None, Field(description="For all members")] = None,
    members: MembersAccess = None,
) -> ListInfo:
    """Rename a list or change its slug or access (not its parent object)."""
    data = changes(
        name=name,
        api_slug=api_slug,
        workspace_access=workspace_access,
        workspace_member_access=member_access(members),
    )
    item = await schema_write(caller, call_attio, attio.aupdate_list, list, data, write=True)
    return list_info(item)


# --- Value history -----------------------------------------------------------------------


class HistoricValue(BaseModel):
    value: Any = Field(description="The value (its fields, when it has several)")
    active_from: str | None
    active_until: str | None = Field(description="null while it is the current value")
    actor: dict[str, Any] | None = Field(description="Who set it")


ValueHistory = paged("ValueHistory", "values", HistoricValue)


def historic_value(item: dict) -> HistoricValue:
    return HistoricValue(
        value=meaning(item, str(item.get("attribute_type") or ""), {}),
        active_from=item.get("active_from"),
        active_until=item.get("active_until"),
        actor=item.get("created_by_actor"),
    )


@tool(title="Get an attribute's value history", read_only=True)
async def get_value_history(
    caller: Caller,
    attribute: Attribute,
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="With `object`")] = None,
    list: Annotated[ListSlug | None, Field(description="With `entry_id`")] = None,
    entry_id: Annotated[Uuid | None, Field(description="With `list`")] = None,
    show_historic: Annotated[bool, Field(description="false: current only")] = True,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 50,
    offset: Offset = 0,
) -> ValueHistory:
    """An attribute's values over time on a record or list entry, oldest first."""
    place = comment_target(object, record_id, list, entry_id)
    page = {"show_historic": show_historic, "limit": limit, "offset": offset}
    if "record" in place:
        target, identifier = "objects", place["record"]["object"]
        call, where = attio.alist_record_values, (identifier, place["record"]["record_id"])
    else:
        target, identifier = "lists", place["entry"]["list"]
        call, where = attio.alist_entry_values, (identifier, place["entry"]["entry_id"])
    items = await call_on_attribute(
        caller, target, identifier, attribute, call, *where, attribute, write=False, **page
    )
    return ValueHistory.of([historic_value(v) for v in items], offset=offset, limit=limit)

"""The workspace and its shape: who the key acts as (`whoami`), the objects, and the
attributes of an object or a list."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import Slug
from ._call import call_attio, reconnect_error, remember_slugs
from ._results import id_part


class WhoAmI(BaseModel):
    workspace_id: str
    workspace_name: str
    workspace_slug: str
    scopes: list[str]
    portal_user: str
    # What vouched for this call: a portal API key (its display id and name), or the
    # OAuth client the user connected.
    api_key: str | None = None
    api_key_name: str | None = None
    oauth_client: str | None = None
    read_only: bool
    # The admins' tool policies that limit this caller's tools (none: no limit but scope).
    tool_policies: list[str] | None = None


@tool(title="Who am I", read_only=True)
async def whoami(caller: Caller) -> WhoAmI:
    """The Attio workspace, scopes, user and key in use; checks the connection works."""
    identity = await call_attio(caller, attio.aget_self)
    if not identity.active:
        raise reconnect_error(caller.connection)
    return WhoAmI(
        workspace_id=identity.workspace_id,
        workspace_name=identity.workspace_name,
        workspace_slug=identity.workspace_slug,
        scopes=identity.scope.split(),
        portal_user=caller.user.get_username(),
        api_key=caller.key.display_id if caller.key else None,
        api_key_name=caller.key.name if caller.key else None,
        oauth_client=caller.app.client_name if caller.app else None,
        read_only=caller.read_only,
        tool_policies=list(caller.tool_access.policies) if caller.tool_access else None,
    )


class ObjectInfo(BaseModel):
    object_id: str
    api_slug: str
    singular_noun: str | None
    plural_noun: str | None
    created_at: str | None


class ObjectList(BaseModel):
    objects: list[ObjectInfo]


@tool(title="List objects", read_only=True)
async def list_objects(caller: Caller) -> ObjectList:
    """List the workspace's objects (people, companies, deals, custom) with their slugs."""
    objects = await call_attio(caller, attio.alist_objects)
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


async def add_choices(
    caller: Caller, target: str, identifier: str, attribute: AttributeInfo
) -> None:
    if attribute.type == "select":
        items = await call_attio(
            caller, attio.alist_select_options, target, identifier, attribute.api_slug
        )
        attribute.options = choices(items, "option_id")
    elif attribute.type == "status":
        items = await call_attio(
            caller, attio.alist_statuses, target, identifier, attribute.api_slug
        )
        attribute.statuses = choices(items, "status_id")


@tool(title="List attributes", read_only=True)
async def list_attributes(
    caller: Caller,
    target: Annotated[
        Literal["objects", "lists"],
        Field(description="Object or list"),
    ],
    identifier: Annotated[Slug, Field(description="Its slug or UUID")],
    include_options: Annotated[
        bool,
        Field(description="Also fetch select/status options (one Attio call each)"),
    ] = True,
) -> AttributeList:
    """List an object's or list's attributes: slug, type, rules, and select/status options
    (written by title). Call it before writing values: they are keyed by these slugs."""
    raw = await call_attio(caller, attio.alist_attributes, target, identifier)
    attributes = [attribute_info(a) for a in raw]
    remember_slugs(
        caller.connection.pk,
        target,
        identifier,
        sorted(a.api_slug for a in attributes),
    )
    if include_options:
        # One at a time: objects have few select and status attributes, and Attio's rate
        # limit is shared by the whole workspace.
        for attribute in attributes:
            await add_choices(caller, target, identifier, attribute)
    return AttributeList(target=target, identifier=identifier, attributes=attributes)

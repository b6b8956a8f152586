"""Lists (pipelines, boards) and their entries: the records in a list, with the list's own
values."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import _confirm, tool
from ._arguments import (
    AttributeKey,
    EntryId,
    Filter,
    ListSlug,
    ObjectSlug,
    Offset,
    RecordId,
    Sorts,
    attio_sorts,
    values_for_attio,
)
from ._call import call_attio, call_with_slug_help
from ._confirm import Confirm, Deletion
from ._results import (
    AttributeNames,
    FullText,
    id_part,
    paged,
    shaped_values,
)


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
    entry_values: dict[str, Any] = Field(
        description="The entry's own values by list attribute slug, like a record's "
        "(the record's values are on the record: `get_record`)"
    )


EntryPage = paged("EntryPage", "entries", Entry)


# How to get a text value whole, in the marker of a text cut short.
WHOLE_TEXT = 'query_list_entries with full_text=["{slug}"]'


async def entries(
    caller: Caller,
    list_: str,
    items: list[dict],
    *,
    attributes: list[str] | None = None,
    full_text: list[str] | None = None,
) -> list[Entry]:
    values = await shaped_values(
        caller,
        "lists",
        list_,
        [item.get("entry_values") for item in items],
        only=attributes,
        full_text=full_text,
        more=WHOLE_TEXT,
    )
    return [
        Entry(
            entry_id=id_part(item, "entry_id"),
            list_id=id_part(item, "list_id"),
            parent_object=item.get("parent_object") or "",
            parent_record_id=item.get("parent_record_id") or "",
            created_at=item.get("created_at"),
            entry_values=shaped,
        )
        for item, shaped in zip(items, values, strict=True)
    ]


async def entry(caller: Caller, list_: str, item: dict) -> Entry:
    [one] = await entries(caller, list_, [item])
    return one


EntryValues = Annotated[
    dict[AttributeKey, Any],
    Field(
        max_length=200,
        description='List values by slug, e.g. {"stage": "Won"}',
    ),
]


@tool(title="List lists", read_only=True)
async def list_lists(caller: Caller) -> ListList:
    """List the workspace's lists (pipelines, boards) and the objects each holds."""
    return ListList(lists=[list_info(x) for x in await call_attio(caller, attio.alist_lists)])


@tool(title="Get a list", read_only=True)
async def get_list(caller: Caller, list: ListSlug) -> ListInfo:
    """Get one list: its name and the objects it holds."""
    return list_info(await call_attio(caller, attio.aget_list, list))


@tool(title="Query list entries", read_only=True)
async def query_list_entries(
    caller: Caller,
    list: ListSlug,
    filter: Filter = None,
    sorts: Sorts = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 25,
    offset: Offset = 0,
    attributes: AttributeNames = None,
    full_text: FullText = None,
) -> EntryPage:
    """List a list's entries (records with the list's own values), filtered and sorted."""
    items = await call_with_slug_help(
        caller,
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
    page = await entries(caller, list, items, attributes=attributes, full_text=full_text)
    return EntryPage.of(page, offset=offset, limit=limit)


@tool(title="Add a record to a list", read_only=False)
async def add_to_list(
    caller: Caller,
    list: ListSlug,
    object: ObjectSlug,
    record_id: RecordId,
    entry_values: EntryValues = {},  # noqa: B006 (pydantic copies defaults)
) -> Entry:
    """Add a record to a list (even if already in it: see `list_record_entries`)."""
    item = await call_with_slug_help(
        caller,
        "lists",
        list,
        attio.acreate_entry,
        list,
        object,
        record_id,
        values_for_attio(entry_values),
        write=True,
    )
    return await entry(caller, list, item)


@tool(title="Update a list entry", read_only=False, destructive=True)
async def update_list_entry(
    caller: Caller,
    list: ListSlug,
    entry_id: EntryId,
    entry_values: Annotated[EntryValues, Field(min_length=1)],
    overwrite_multiselect: Annotated[
        bool,
        Field(description="Replace multiselect values"),
    ] = False,
) -> Entry:
    """Change some of a list entry's own values."""
    call = attio.aoverwrite_entry if overwrite_multiselect else attio.aupdate_entry
    item = await call_with_slug_help(
        caller, "lists", list, call, list, entry_id, values_for_attio(entry_values), write=True
    )
    return await entry(caller, list, item)


@tool(title="Remove a record from a list", read_only=False, destructive=True, idempotent=True)
async def remove_from_list(
    caller: Caller, list: ListSlug, entry_id: EntryId, confirm: Confirm = None
) -> Deletion:
    """Remove an entry from a list. Previews first: show the user, then `confirm`."""
    arguments = {"list": list, "entry_id": entry_id}
    confirmation = _confirm.check(caller, "remove_from_list", arguments, confirm)
    reading = await _confirm.entry_to_remove(caller, list, entry_id)
    if preview := confirmation.preview_unless_confirmed(reading):
        return Deletion(deleted=False, kind="list entry", id=entry_id, preview=preview)
    await call_attio(caller, attio.adelete_entry, list, entry_id, write=True)
    caller.outcome.record_ids = [entry_id]
    return Deletion(deleted=True, kind="list entry", id=entry_id)

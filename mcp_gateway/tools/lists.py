"""Lists (pipelines, boards) and their entries: the records in a list, with the list's own
values."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
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
from ._results import Deleted, compact_values, deleted, id_part, paged


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


EntryPage = paged("EntryPage", "entries", Entry)


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
async def list_lists(caller: Caller) -> ListList:
    """List the workspace's lists (pipelines, boards) with their slugs and the objects whose
    records they hold. Use a slug as `list` in the list tools and `list_attributes` (target
    `lists`) for a list's own fields."""
    return ListList(lists=[list_info(x) for x in await call_attio(caller, attio.alist_lists)])


@tool(title="Get a list", read_only=True)
async def get_list(caller: Caller, list: ListSlug) -> ListInfo:
    """Get one list by slug or UUID: its name and the objects whose records it holds. If it
    is not found, `list_lists` gives valid slugs."""
    return list_info(await call_attio(caller, attio.aget_list, list))


@tool(title="Query list entries", read_only=True)
async def query_list_entries(
    caller: Caller,
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
    return EntryPage.of([entry(e) for e in items], offset=offset, limit=limit)


@tool(title="Add a record to a list", read_only=False)
async def add_to_list(
    caller: Caller,
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
    return entry(item)


@tool(title="Update a list entry", read_only=False, destructive=True)
async def update_list_entry(
    caller: Caller,
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
        caller, "lists", list, call, list, entry_id, values_for_attio(entry_values), write=True
    )
    return entry(item)


@tool(title="Remove a record from a list", read_only=False, destructive=True, idempotent=True)
async def remove_from_list(caller: Caller, list: ListSlug, entry_id: EntryId) -> Deleted:
    """Remove an entry from a list, losing its list values (the record itself stays). Attio
    cannot undo this. Find entry ids with `list_record_entries` or `query_list_entries`."""
    await call_attio(caller, attio.adelete_entry, list, entry_id, write=True)
    return deleted("list entry", entry_id)

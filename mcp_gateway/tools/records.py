"""Records: search, query, get, create, update, upsert and delete them, and the lists a
record is in."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import _confirm, tool
from ._arguments import (
    AttributeKey,
    Filter,
    ObjectSlug,
    Offset,
    RecordId,
    Sorts,
    Values,
    attio_sorts,
    values_for_attio,
)
from ._call import call_attio, call_with_slug_help
from ._confirm import Confirm, Deletion
from ._results import (
    AttributeNames,
    FullText,
    display_name,
    id_part,
    paged,
    shaped_values,
)


class Record(BaseModel):
    record_id: str
    object_id: str
    name: str | None = Field(None, description="The record's name, when it has one")
    created_at: str | None
    web_url: str | None = Field(None, description="The record's page in the Attio app")
    values: dict[str, Any] = Field(
        description="Current values by attribute slug: one value, or a list for multiselect "
        "attributes (attributes without a value are left out)"
    )


RecordPage = paged(
    "RecordPage",
    "records",
    Record,
    next_offset_help="Pass as `offset` to get the next page; null when this was the last",
)


# How to get a text attribute whole, in the marker of a text cut short.
WHOLE_TEXT = 'get_record with full_text=["{slug}"]'


async def records(
    caller: Caller,
    object: str,
    items: list[dict],
    *,
    attributes: list[str] | None = None,
    full_text: list[str] | None = None,
) -> list[Record]:
    values = await shaped_values(
        caller,
        "objects",
        object,
        [item.get("values") for item in items],
        only=attributes,
        full_text=full_text,
        more=WHOLE_TEXT,
    )
    return [
        Record(
            record_id=id_part(item, "record_id"),
            object_id=id_part(item, "object_id"),
            name=display_name(item.get("values") or {}),
            created_at=item.get("created_at"),
            web_url=item.get("web_url"),
            values=shaped,
        )
        for item, shaped in zip(items, values, strict=True)
    ]


async def record(caller: Caller, object: str, item: dict, **options: Any) -> Record:
    [one] = await records(caller, object, [item], **options)
    return one


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
    caller: Caller,
    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description="Name, email, domain or phone",
        ),
    ],
    objects: Annotated[
        list[ObjectSlug],
        Field(min_length=1, max_length=10, description="Objects to search"),
    ] = ["people", "companies"],  # noqa: B006 (pydantic copies defaults)
    limit: Annotated[int, Field(ge=1, le=25, description="Most results")] = 10,
) -> SearchResults:
    """Fuzzy search like Attio's search box; ids and labels only."""
    hits = await call_attio(caller, attio.asearch_records, query, objects, limit)
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
    caller: Caller,
    object: ObjectSlug,
    filter: Filter = None,
    sorts: Sorts = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 25,
    offset: Offset = 0,
    attributes: AttributeNames = None,
) -> RecordPage:
    """List an object's records, filtered and sorted, a page at a time."""
    items = await call_with_slug_help(
        caller,
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
    page = await records(caller, object, items, attributes=attributes)
    return RecordPage.of(page, offset=offset, limit=limit)


@tool(title="Get a record", read_only=True)
async def get_record(
    caller: Caller,
    object: ObjectSlug,
    record_id: RecordId,
    attributes: AttributeNames = None,
    full_text: FullText = None,
) -> Record:
    """Get one record's current values."""
    item = await call_attio(caller, attio.aget_record, object, record_id)
    return await record(caller, object, item, attributes=attributes, full_text=full_text)


@tool(title="Create a record", read_only=False)
async def create_record(caller: Caller, object: ObjectSlug, values: Values) -> Record:
    """Create a record; a taken unique value fails (see `upsert_record`)."""
    item = await call_with_slug_help(
        caller,
        "objects",
        object,
        attio.acreate_record,
        object,
        values_for_attio(values),
        write=True,
    )
    return await record(caller, object, item)


@tool(title="Update a record", read_only=False, destructive=True)
async def update_record(
    caller: Caller,
    object: ObjectSlug,
    record_id: RecordId,
    values: Values,
    overwrite_multiselect: Annotated[
        bool,
        Field(description="Replace multiselect values"),
    ] = False,
) -> Record:
    """Change some of a record's values; multiselect values are added unless
    `overwrite_multiselect`."""
    call = attio.aoverwrite_record if overwrite_multiselect else attio.aupdate_record
    item = await call_with_slug_help(
        caller, "objects", object, call, object, record_id, values_for_attio(values), write=True
    )
    return await record(caller, object, item)


@tool(title="Create or update a record", read_only=False, destructive=True, idempotent=True)
async def upsert_record(
    caller: Caller,
    object: ObjectSlug,
    matching_attribute: Annotated[
        AttributeKey,
        Field(description="Unique attribute, in `values` too (e.g. `domains`)"),
    ],
    values: Values,
) -> Record:
    """Create a record, or update the one `matching_attribute` matches (multiselect values
    are replaced)."""
    item = await call_with_slug_help(
        caller,
        "objects",
        object,
        attio.aassert_record,
        object,
        matching_attribute,
        values_for_attio(values),
        write=True,
    )
    return await record(caller, object, item)


@tool(title="Delete a record", read_only=False, destructive=True, idempotent=True)
async def delete_record(
    caller: Caller, object: ObjectSlug, record_id: RecordId, confirm: Confirm = None
) -> Deletion:
    """Delete a record for good. Previews first: show the user, then `confirm`."""
    arguments = {"object": object, "record_id": record_id}
    confirmation = _confirm.check(caller, "delete_record", arguments, confirm)
    reading = await _confirm.record_to_delete(caller, object, record_id)
    if preview := confirmation.preview_unless_confirmed(reading):
        return Deletion(deleted=False, kind="record", id=record_id, preview=preview)
    await call_attio(caller, attio.adelete_record, object, record_id, write=True)
    caller.outcome.record_ids = [record_id]
    return Deletion(deleted=True, kind="record", id=record_id)


class RecordEntry(BaseModel):
    list_id: str
    list_api_slug: str
    entry_id: str
    created_at: str | None


RecordEntries = paged("RecordEntries", "entries", RecordEntry)


@tool(title="List a record's list entries", read_only=True)
async def list_record_entries(
    caller: Caller,
    object: ObjectSlug,
    record_id: RecordId,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 25,
    offset: Offset = 0,
) -> RecordEntries:
    """List the lists a record is in (entry ids)."""
    items = await call_attio(
        caller, attio.alist_record_entries, object, record_id, limit=limit, offset=offset
    )
    return RecordEntries.of(
        [
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
    )

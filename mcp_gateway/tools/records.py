"""Records: search, query, get, create, update, upsert and delete them, and the lists a
record is in."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
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
from ._results import Deleted, compact_values, deleted, display_name, id_part, paged


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


RecordPage = paged(
    "RecordPage",
    "records",
    Record,
    next_offset_help="Pass as `offset` to get the next page; null when this was the last",
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
    caller: Caller,
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
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> RecordPage:
    """List an object's records with Attio's filters and sorts, a page at a time (default
    25, at most 500 per page; pass `next_offset` back as `offset` for more). Filters and
    sorts use Attio's JSON shapes and attribute slugs; if Attio rejects a slug the error
    lists the valid ones, and `list_attributes` shows slugs, types and options."""
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
    return RecordPage.of([record(r) for r in items], offset=offset, limit=limit)


@tool(title="Get a record", read_only=True)
async def get_record(caller: Caller, object: ObjectSlug, record_id: RecordId) -> Record:
    """Get one record with all its current values, by object and record id. If it is not
    found, check the object slug and find the id with `search_records` or `query_records`."""
    return record(await call_attio(caller, attio.aget_record, object, record_id))


@tool(title="Create a record", read_only=False)
async def create_record(caller: Caller, object: ObjectSlug, values: Values) -> Record:
    """Create a record (a person, company, deal or custom object record) from attribute
    values keyed by slug. Fails if a unique attribute (an email address, a domain) already
    belongs to another record: use `upsert_record` to create-or-update instead. Required
    attributes must be given; unknown slugs are answered with the valid ones."""
    item = await call_with_slug_help(
        caller,
        "objects",
        object,
        attio.acreate_record,
        object,
        values_for_attio(values),
        write=True,
    )
    return record(item)


@tool(title="Update a record", read_only=False, destructive=True)
async def update_record(
    caller: Caller,
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
        caller, "objects", object, call, object, record_id, values_for_attio(values), write=True
    )
    return record(item)


@tool(title="Create or update a record", read_only=False, destructive=True, idempotent=True)
async def upsert_record(
    caller: Caller,
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
        caller,
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
async def delete_record(caller: Caller, object: ObjectSlug, record_id: RecordId) -> Deleted:
    """Delete a record for good, with its list entries, notes and comments; Attio cannot
    undo this. Confirm with the user first. A 404 means it is already gone or the id is
    wrong."""
    await call_attio(caller, attio.adelete_record, object, record_id, write=True)
    return deleted("record", record_id)


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
    limit: Annotated[int, Field(ge=1, le=500, description="Page size (at most 500)")] = 25,
    offset: Offset = 0,
) -> RecordEntries:
    """List the lists a record is in: one row per list entry, with the list's slug and the
    entry id (use them with `query_list_entries`, `update_list_entry` or
    `remove_from_list`). Paged: pass `next_offset` back as `offset` for more."""
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

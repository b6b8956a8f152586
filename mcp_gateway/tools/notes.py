"""Notes on records: list, get, create and delete them (Attio's API cannot edit a note)."""

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import ObjectSlug, Offset, RecordId, Uuid
from ._call import call_attio
from ._results import Deleted, deleted, id_part, paged

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


NoteList = paged("NoteList", "notes", Note)


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
    caller: Caller,
    object: ObjectSlug,
    record_id: RecordId,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size (at most 50)")] = 10,
    offset: Offset = 0,
) -> NoteList:
    """List the notes on a record: title, author, date and the plaintext content (cut at
    1000 characters; `get_note` gives the whole note, also as markdown). Paged, at most 50
    a page: pass `next_offset` back as `offset` for more."""
    items = await call_attio(
        caller, attio.alist_notes, object, record_id, limit=limit, offset=offset
    )
    return NoteList.of([note(n, preview=True) for n in items], offset=offset, limit=limit)


@tool(title="Get a note", read_only=True)
async def get_note(
    caller: Caller, note_id: Annotated[Uuid, Field(description="The note's UUID")]
) -> Note:
    """Get one note with its whole content, as plaintext and as markdown. Find note ids with
    `list_notes`."""
    return note(await call_attio(caller, attio.aget_note, note_id))


@tool(title="Create a note", read_only=False)
async def create_note(
    caller: Caller,
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
        caller,
        attio.acreate_note,
        parent_object,
        parent_record_id,
        title,
        content,
        format,
        write=True,
    )
    return note(item)


@tool(title="Delete a note", read_only=False, destructive=True, idempotent=True)
async def delete_note(
    caller: Caller, note_id: Annotated[Uuid, Field(description="The note's UUID")]
) -> Deleted:
    """Delete a note for good; Attio cannot undo this. Confirm with the user first. A 404
    means it is already gone or the id is wrong."""
    await call_attio(caller, attio.adelete_note, note_id, write=True)
    return deleted("note", note_id)

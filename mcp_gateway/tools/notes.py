"""Notes on records: list, get, create and delete them (Attio's API cannot edit a note)."""

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import ObjectSlug, Offset, RecordId, Uuid
from ._call import call_attio
from ._results import TEXT_LIMIT, Deleted, cut, deleted, id_part, paged

# A listing shows the start of each note; `get_note` shows more, and all on request.
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
        False, description="True when the content is cut short (the text says how to get all)"
    )


NoteList = paged("NoteList", "notes", Note)


def note(item: dict, *, preview: bool = False, whole: bool = False) -> Note:
    """A note; its content cut at NOTE_PREVIEW_CHARS in a `preview` (a listing) and at
    TEXT_LIMIT otherwise, unless `whole`."""
    text = item.get("content_plaintext") or ""
    markdown = None if preview else item.get("content_markdown")
    note_id = id_part(item, "note_id")
    limit = NOTE_PREVIEW_CHARS if preview else TEXT_LIMIT
    more = f"get_note with note_id {note_id}" if preview else "get_note with full_text=true"
    truncated = not whole and max(len(text), len(markdown or "")) > limit
    if truncated:
        text = cut(text, more, limit)
        markdown = cut(markdown, more, limit) if markdown is not None else None
    return Note(
        note_id=note_id,
        parent_object=item.get("parent_object") or "",
        parent_record_id=item.get("parent_record_id") or "",
        title=item.get("title") or "",
        created_at=item.get("created_at"),
        created_by=item.get("created_by_actor"),
        content_plaintext=text,
        content_markdown=markdown,
        content_truncated=truncated,
    )


@tool(title="List notes on a record", read_only=True)
async def list_notes(
    caller: Caller,
    object: ObjectSlug,
    record_id: RecordId,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size")] = 10,
    offset: Offset = 0,
) -> NoteList:
    """List a record's notes, content cut short (see `get_note`)."""
    items = await call_attio(
        caller, attio.alist_notes, object, record_id, limit=limit, offset=offset
    )
    return NoteList.of([note(n, preview=True) for n in items], offset=offset, limit=limit)


@tool(title="Get a note", read_only=True)
async def get_note(
    caller: Caller,
    note_id: Annotated[Uuid, Field(description="Note UUID")],
    full_text: Annotated[bool, Field(description="Give the content uncut")] = False,
) -> Note:
    """Get one note's content, as plaintext and markdown."""
    return note(await call_attio(caller, attio.aget_note, note_id), whole=full_text)


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
    title: Annotated[str, Field(min_length=1, max_length=500, description="Title")],
    content: Annotated[str, Field(min_length=1, max_length=100_000, description="Body")],
    format: Annotated[
        Literal["plaintext", "markdown"],
        Field(description="Content format"),
    ] = "plaintext",
) -> Note:
    """Add a note to a record; notes cannot be edited afterwards."""
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
    caller: Caller, note_id: Annotated[Uuid, Field(description="Note UUID")]
) -> Deleted:
    """Delete a note for good; confirm with the user first."""
    await call_attio(caller, attio.adelete_note, note_id, write=True)
    return deleted("note", note_id)

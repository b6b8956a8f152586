"""Meetings, their call recordings and the recordings' transcripts, read only. Attio pages
these by cursor, not by offset: each page gives the cursor of the next."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import ObjectSlug, Uuid
from ._call import ToolFailure, call_attio
from ._results import id_part
from .tasks import attio_timestamp

T = TypeVar("T")

# The scopes each kind of read needs, as Attio's document lists them.
MEETING_SCOPES = ("meeting:read", "record_permission:read")
RECORDING_SCOPES = ("meeting:read", "call_recording:read")

MeetingId = Annotated[Uuid, Field(description="The meeting's UUID")]
CallRecordingId = Annotated[Uuid, Field(description="The call recording's UUID")]
# A cursor travels as a query parameter (never in the path); Attio's are base64 and a
# signature, well under this bound.
Cursor = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=1000,
        pattern=r"^[!-~]+$",
        description="`next_cursor` from the last page",
    ),
]
# No commas: Attio takes the addresses as one comma-separated parameter.
Email = Annotated[str, Field(max_length=254, pattern=r"^[^\s@,]+@[^\s@,]+$")]


class Participant(BaseModel):
    email: str | None
    is_organizer: bool
    status: str | None = Field(description="accepted, tentative, declined or pending")


class LinkedRecord(BaseModel):
    object: str = Field(description="The object's slug")
    record_id: str


class Meeting(BaseModel):
    meeting_id: str
    title: str
    start: str | None = Field(description="A date-time, or a date for all-day meetings")
    end: str | None = Field(description="Exclusive")
    is_all_day: bool
    participants: list[Participant]
    linked_records: list[LinkedRecord]
    description: str | None = Field(None, description="Only from `get_meeting`")


class MeetingList(BaseModel):
    meetings: list[Meeting]
    next_cursor: str | None = Field(description="Pass as `cursor` for more; null at the end")


class CallRecording(BaseModel):
    call_recording_id: str
    meeting_id: str
    status: str = Field(description="processing, completed or failed")
    web_url: str | None
    created_at: str | None


class CallRecordingList(BaseModel):
    call_recordings: list[CallRecording]
    next_cursor: str | None = Field(description="Pass as `cursor` for more; null at the end")


class Segment(BaseModel):
    speaker: str
    start: float = Field(description="Seconds from the recording's start")
    end: float
    text: str


class Transcript(BaseModel):
    meeting_id: str
    call_recording_id: str
    segments: list[Segment]
    next_cursor: str | None = Field(description="Pass as `cursor` for more; null at the end")


def moment(when: Any) -> str | None:
    if not isinstance(when, dict):
        return None
    return when.get("datetime") or when.get("date")


def meeting(item: dict, *, full: bool = False) -> Meeting:
    return Meeting(
        meeting_id=id_part(item, "meeting_id"),
        title=item.get("title") or "",
        start=moment(item.get("start")),
        end=moment(item.get("end")),
        is_all_day=bool(item.get("is_all_day")),
        participants=[
            Participant(
                email=p.get("email_address"),
                is_organizer=bool(p.get("is_organizer")),
                status=p.get("status"),
            )
            for p in item.get("participants") or []
        ],
        linked_records=[
            LinkedRecord(object=str(r.get("object_slug") or ""), record_id=str(r.get("record_id")))
            for r in item.get("linked_records") or []
        ],
        description=item.get("description") if full else None,
    )


def call_recording(item: dict) -> CallRecording:
    return CallRecording(
        call_recording_id=id_part(item, "call_recording_id"),
        meeting_id=id_part(item, "meeting_id"),
        status=str(item.get("status") or ""),
        web_url=item.get("web_url"),
        created_at=item.get("created_at"),
    )


def segment(item: dict) -> Segment:
    speaker = item.get("speaker")
    name = speaker.get("name") if isinstance(speaker, dict) else None
    return Segment(
        speaker=str(name or ""),
        start=float(item.get("start_time") or 0),
        end=float(item.get("end_time") or 0),
        text=str(item.get("speech") or ""),
    )


def cursor_params(cursor: str | None, **params: Any) -> dict[str, Any]:
    return {**params, "cursor": cursor} if cursor is not None else params


def saying_what_helps(
    call: Callable[..., Awaitable[T]], scopes: tuple[str, ...], find_with: str
) -> Callable[..., Awaitable[T]]:
    """`call`, with Attio's 403 naming the scopes to ask for and its 404 naming the tool
    that finds valid ids (Attio's own text may say neither)."""

    async def attempt(token: str, *args: Any, **kwargs: Any) -> T:
        try:
            return await call(token, *args, **kwargs)
        except attio.AttioError as e:
            if e.status == 403:
                needed = " and ".join(f"`{scope}`" for scope in scopes)
                hint = f"Reading this needs the Attio scopes {needed}."
            elif e.status == 404:
                hint = f"Find valid ids with `{find_with}`."
            else:
                raise
            raise attio.AttioError(
                f"{e.message} {hint}", status=e.status, code=e.code, permanent=e.permanent
            ) from None

    return attempt


@tool(title="List meetings", read_only=True)
async def list_meetings(
    caller: Caller,
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="With `object`")] = None,
    participants: Annotated[
        list[Email] | None,
        Field(max_length=20, description="Any of these emails"),
    ] = None,
    ends_from: Annotated[datetime | None, Field(description="Ending at or after")] = None,
    starts_before: Annotated[datetime | None, Field(description="Starting before")] = None,
    newest_first: Annotated[bool, Field(description="Latest start first")] = False,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size")] = 20,
    cursor: Cursor = None,
) -> MeetingList:
    """List meetings, earliest first, optionally by linked record, participants or time.
    Paged by `cursor`."""
    if (object is None) != (record_id is None):
        raise ToolFailure("Give both `object` and `record_id`, or neither.", "invalid_arguments")
    params: dict[str, Any] = {"limit": limit}
    if object is not None:
        params.update(linked_object=object, linked_record_id=record_id)
    if participants:
        params["participants"] = ",".join(participants)
    if ends_from is not None:
        params["ends_from"] = attio_timestamp(ends_from)
    if starts_before is not None:
        params["starts_before"] = attio_timestamp(starts_before)
    if newest_first:
        params["sort"] = "start_desc"
    call = saying_what_helps(attio.alist_meetings, MEETING_SCOPES, "list_objects")
    page = await call_attio(caller, call, cursor_params(cursor, **params))
    return MeetingList(meetings=[meeting(m) for m in page.items], next_cursor=page.next_cursor)


@tool(title="Get a meeting", read_only=True)
async def get_meeting(caller: Caller, meeting_id: MeetingId) -> Meeting:
    """Get a meeting with its description, participants and linked records."""
    call = saying_what_helps(attio.aget_meeting, MEETING_SCOPES, "list_meetings")
    return meeting(await call_attio(caller, call, meeting_id), full=True)


@tool(title="List call recordings", read_only=True)
async def list_call_recordings(
    caller: Caller,
    meeting_id: MeetingId,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size (at most 50)")] = 20,
    cursor: Cursor = None,
) -> CallRecordingList:
    """List a meeting's call recordings and their status. Paged by `cursor`."""
    call = saying_what_helps(attio.alist_call_recordings, RECORDING_SCOPES, "list_meetings")
    page = await call_attio(caller, call, meeting_id, cursor_params(cursor, limit=limit))
    return CallRecordingList(
        call_recordings=[call_recording(r) for r in page.items], next_cursor=page.next_cursor
    )


@tool(title="Get a call recording", read_only=True)
async def get_call_recording(
    caller: Caller, meeting_id: MeetingId, call_recording_id: CallRecordingId
) -> CallRecording:
    """Get a call recording's status and its link in Attio."""
    call = saying_what_helps(attio.aget_call_recording, RECORDING_SCOPES, "list_call_recordings")
    return call_recording(await call_attio(caller, call, meeting_id, call_recording_id))


@tool(title="Get a call transcript", read_only=True)
async def get_transcript(
    caller: Caller,
    meeting_id: MeetingId,
    call_recording_id: CallRecordingId,
    cursor: Cursor = None,
) -> Transcript:
    """A page of a call's transcript: who said what, when (seconds). Paged by `cursor`."""
    call = saying_what_helps(attio.aget_transcript, RECORDING_SCOPES, "list_call_recordings")
    page = await call_attio(caller, call, meeting_id, call_recording_id, cursor_params(cursor))
    return Transcript(
        meeting_id=meeting_id,
        call_recording_id=call_recording_id,
        segments=[segment(s) for s in page.items if isinstance(s, dict)],
        next_cursor=page.next_cursor,
    )

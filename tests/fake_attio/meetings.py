"""The fake's meetings, call recordings and transcripts (Attio marks them beta).

``register(fake)`` adds the five read operations to the fake's routing table, through
``rest.RestApi.route``: the token (401), the "Required scopes" of the operation in Attio's
document (403), and Attio's error body fitted to what the operation declares. Meetings
and call recordings page by cursor: ``limit`` and ``cursor`` in, ``pagination.next_cursor``
out. A transcript pages its segments by cursor too, ``TRANSCRIPT_PAGE_SIZE`` at a time.

``seed(store)`` gives every workspace three meetings (``seed.py`` calls it):

- "Acme quarterly review" (2024-01-16 10:00-11:00 UTC), organised by Alice with Ada
  Lovelace, linked to Acme Corp and Ada; one completed call recording whose transcript
  has ``SEEDED_SEGMENTS`` segments (two pages), Alice and Ada speaking in turn;
- "Initech renewal call" (2024-01-18 15:00-15:30 New York time), Bob with Grace Hopper,
  linked to Initech and Grace; no recording;
- "Hooli offsite", all day on 2024-01-22, Alan Turing invited, linked to Hooli.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from .model import Actor, Store, seed_id
from .rest import Problem, Req, RestApi, _path_regex, not_found

if TYPE_CHECKING:
    from .core import FakeAttio

TRANSCRIPT_PAGE_SIZE = 20
SEEDED_SEGMENTS = 30


# --- the data ----------------------------------------------------------------------


@dataclass
class Participant:
    email_address: str | None
    status: str = "accepted"  # accepted, tentative, declined or pending
    is_organizer: bool = False


@dataclass
class Segment:
    speaker: str
    speech: str
    start_time: float  # seconds from the start of the recording
    end_time: float


@dataclass
class CallRecording:
    id: str
    meeting_id: str
    status: str  # processing, completed or failed
    created_by_actor: Actor
    created_at: str
    transcript: list[Segment] = field(default_factory=list)


@dataclass
class Meeting:
    id: str
    title: str
    description: str
    # A timed meeting: ISO date-times with their offset, and the IANA timezone (or
    # None). An all-day meeting: dates, `end` exclusive as in RFC 5545.
    start: str
    end: str
    timezone: str | None
    is_all_day: bool
    participants: list[Participant]
    linked_records: list[tuple[str, str]]  # (object slug, record id)
    created_by_actor: Actor
    created_at: str
    call_recordings: dict[str, CallRecording] = field(default_factory=dict)

    def bounds(self, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
        """When it starts and ends; an all-day meeting's days are `zone`'s days."""
        if self.is_all_day:
            start = dt.datetime.combine(dt.date.fromisoformat(self.start), dt.time(), zone)
            end = dt.datetime.combine(dt.date.fromisoformat(self.end), dt.time(), zone)
            return start, end
        return dt.datetime.fromisoformat(self.start), dt.datetime.fromisoformat(self.end)


# --- cursors -----------------------------------------------------------------------

# Attio's cursors are opaque (base64 of JSON, a dot, a signature); the fake's are shaped
# alike, and say what they page through, so one listing's cursor is refused by another.


def cursor_for(scope: str, offset: int) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"scope": scope, "offset": offset}).encode())
    signature = hashlib.sha256(payload).hexdigest()[:16]
    return f"{payload.decode()}.{signature}"


def offset_of(req: Req, scope: str) -> int:
    cursor = req.query.get("cursor")
    if cursor is None:
        return 0
    payload, _, signature = cursor.partition(".")
    try:
        if hashlib.sha256(payload.encode()).hexdigest()[:16] != signature:
            raise ValueError("bad signature")
        decoded = json.loads(base64.urlsafe_b64decode(payload.encode()))
        if decoded["scope"] != scope or not isinstance(decoded["offset"], int):
            raise ValueError("another listing's cursor")
        return decoded["offset"]
    except (ValueError, KeyError, TypeError):
        raise Problem("The pagination cursor is not valid.") from None


def paged(req: Req, scope: str, items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """One page of `items` from the request's cursor, and the cursor of the next page."""
    offset = offset_of(req, scope)
    page = items[offset : offset + limit]
    more = offset + limit < len(items)
    return page, cursor_for(scope, offset + limit) if more else None


def limit_of(req: Req) -> int:
    # The document bounds the meetings' limit (the request check refuses others); call
    # recordings document only "a maximum of 200".
    limit = req.int_param("limit", 50)
    if not 1 <= limit <= 200:
        raise Problem("limit must be between 1 and 200.")
    return limit


# --- JSON shapes ---------------------------------------------------------------------


def meeting_json(store: Store, meeting: Meeting) -> dict[str, Any]:
    if meeting.is_all_day:
        start: dict[str, Any] = {"date": meeting.start}
        end: dict[str, Any] = {"date": meeting.end}
    else:
        start = {"datetime": meeting.start, "timezone": meeting.timezone}
        end = {"datetime": meeting.end, "timezone": meeting.timezone}
    return {
        "id": {"workspace_id": store.workspace_id, "meeting_id": meeting.id},
        "title": meeting.title,
        "description": meeting.description,
        "is_all_day": meeting.is_all_day,
        "start": start,
        "end": end,
        "participants": [
            {
                "status": p.status,
                "is_organizer": p.is_organizer,
                "email_address": p.email_address,
            }
            for p in meeting.participants
        ],
        "linked_records": [
            {
                "object_slug": slug,
                "object_id": store.objects[slug].id,
                "record_id": record_id,
            }
            # A deleted record is no longer linked.
            for slug, record_id in meeting.linked_records
            if store.record(slug, record_id) is not None
        ],
        "created_at": meeting.created_at,
        "created_by_actor": dict(meeting.created_by_actor),
    }


def recording_url(store: Store, recording: CallRecording) -> str:
    return (
        f"https://app.attio.com/{store.workspace_slug}/calls/{recording.meeting_id}/{recording.id}"
    )


def recording_ids(store: Store, recording: CallRecording) -> dict[str, str]:
    return {
        "workspace_id": store.workspace_id,
        "meeting_id": recording.meeting_id,
        "call_recording_id": recording.id,
    }


def recording_json(store: Store, recording: CallRecording) -> dict[str, Any]:
    return {
        "id": recording_ids(store, recording),
        "status": recording.status,
        "web_url": recording_url(store, recording),
        "created_by_actor": dict(recording.created_by_actor),
        "created_at": recording.created_at,
    }


def raw_transcript(segments: list[Segment]) -> str:
    """ "[00:05] Ada Lovelace: Hello." lines, as Attio's example shows."""
    return "\n".join(
        f"[{int(s.start_time) // 60:02d}:{int(s.start_time) % 60:02d}] {s.speaker}: {s.speech}"
        for s in segments
    )


# --- the handlers ----------------------------------------------------------------------


def _ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


def _meeting(req: Req) -> Meeting:
    meeting = req.store.meetings.get(req.path["meeting_id"])
    if meeting is None:
        raise not_found("Meeting with ID", req.path["meeting_id"])
    return meeting


def _recording(req: Req) -> CallRecording:
    recording = _meeting(req).call_recordings.get(req.path["call_recording_id"])
    if recording is None:
        raise not_found("Call recording with ID", req.path["call_recording_id"])
    return recording


def _moment(req: Req, name: str, zone: dt.tzinfo) -> dt.datetime | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(f"{name} must be an ISO 8601 timestamp, got {raw!r}.") from None
    # A time without an offset is read in the request's timezone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def meetings_list(req: Req) -> httpx.Response:
    store, query = req.store, req.query
    try:
        zone = ZoneInfo(query.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise Problem(f"timezone {query.get('timezone')!r} is not an IANA timezone.") from None
    meetings = list(store.meetings.values())
    linked_object, linked_record_id = query.get("linked_object"), query.get("linked_record_id")
    if (linked_object is None) != (linked_record_id is None):
        raise Problem("linked_object and linked_record_id must be given together.")
    if linked_object is not None:
        obj = store.object(linked_object)
        if obj is None:
            raise not_found("Object with slug/ID", linked_object)
        link = (obj.api_slug, linked_record_id)
        meetings = [m for m in meetings if link in m.linked_records]
    emails = {e.strip().casefold() for e in query.get("participants", "").split(",") if e.strip()}
    if emails:
        meetings = [
            m
            for m in meetings
            if any((p.email_address or "").casefold() in emails for p in m.participants)
        ]
    ends_from = _moment(req, "ends_from", zone)
    if ends_from is not None:
        # Inclusive: a meeting ending exactly then is kept.
        meetings = [m for m in meetings if m.bounds(zone)[1] >= ends_from]
    starts_before = _moment(req, "starts_before", zone)
    if starts_before is not None:
        meetings = [m for m in meetings if m.bounds(zone)[0] < starts_before]
    meetings.sort(
        key=lambda m: (m.bounds(zone)[0], m.id), reverse=query.get("sort") == "start_desc"
    )
    # The cursor belongs to this query: the same filters page through the same list.
    scope = "meetings?" + "&".join(
        f"{k}={v}" for k, v in sorted(query.items()) if k not in ("cursor", "limit")
    )
    page, next_cursor = paged(req, scope, meetings, limit_of(req))
    return _ok(
        {
            "data": [meeting_json(store, m) for m in page],
            "pagination": {"next_cursor": next_cursor},
        }
    )


def meetings_get(req: Req) -> httpx.Response:
    return _ok({"data": meeting_json(req.store, _meeting(req))})


def call_recordings_list(req: Req) -> httpx.Response:
    meeting = _meeting(req)
    recordings = sorted(meeting.call_recordings.values(), key=lambda r: (r.created_at, r.id))
    page, next_cursor = paged(req, f"call_recordings/{meeting.id}", recordings, limit_of(req))
    return _ok(
        {
            "data": [recording_json(req.store, r) for r in page],
            "pagination": {"next_cursor": next_cursor},
        }
    )


def call_recordings_get(req: Req) -> httpx.Response:
    return _ok({"data": recording_json(req.store, _recording(req))})


def transcripts_get(req: Req) -> httpx.Response:
    recording = _recording(req)
    page, next_cursor = paged(
        req, f"transcript/{recording.id}", recording.transcript, TRANSCRIPT_PAGE_SIZE
    )
    return _ok(
        {
            "data": {
                "id": recording_ids(req.store, recording),
                "transcript": [
                    {
                        "speech": s.speech,
                        "start_time": s.start_time,
                        "end_time": s.end_time,
                        "speaker": {"name": s.speaker},
                    }
                    for s in page
                ],
                "raw_transcript": raw_transcript(recording.transcript),
                "web_url": recording_url(req.store, recording) + "/transcript",
            },
            "pagination": {"next_cursor": next_cursor},
        }
    )


RECORDING = "/v2/meetings/{meeting_id}/call_recordings/{call_recording_id}"
ROUTES = (
    ("/v2/meetings", "meetings.list", meetings_list),
    ("/v2/meetings/{meeting_id}", "meetings.get", meetings_get),
    ("/v2/meetings/{meeting_id}/call_recordings", "call_recordings.list", call_recordings_list),
    (RECORDING, "call_recordings.get", call_recordings_get),
    (f"{RECORDING}/transcript", "transcripts.get", transcripts_get),
)


def register(fake: FakeAttio) -> None:
    """Add the meeting, call recording and transcript routes to ``fake``."""
    api = RestApi(fake)
    for template, endpoint, handler in ROUTES:
        fake.add_route("GET", _path_regex(template), endpoint, api.route("GET", template, handler))


# --- the seed ---------------------------------------------------------------------------

TRANSCRIPT_LINES = (
    ("Alice Anders", "Thanks for joining, Ada. Shall we start with last quarter?"),
    ("Ada Lovelace", "Yes. Usage grew in every team, the analysts most of all."),
    ("Alice Anders", "Good to hear. Any problems we should know about?"),
    ("Ada Lovelace", "Only the export jobs; they were slow at the end of the month."),
    ("Alice Anders", "We have a fix for that shipping next week."),
    ("Ada Lovelace", "Then we would like to talk about the expansion."),
)


def transcript_segment(index: int) -> Segment:
    """The seeded transcript's segment `index`: ten seconds apart, the lines in turn."""
    speaker, speech = TRANSCRIPT_LINES[index % len(TRANSCRIPT_LINES)]
    return Segment(speaker, speech, start_time=10.0 * index + 0.5, end_time=10.0 * index + 8.25)


def seed(store: Store, owner_member_id: str) -> None:
    """Add the seeded meetings (see the module docstring) to a freshly seeded store."""
    slug = store.workspace_slug
    alice = {"type": "workspace-member", "id": owner_member_id}
    bob = {"type": "workspace-member", "id": seed_id(slug, "member", "bob")}

    def linked(*records: tuple[str, str]) -> list[tuple[str, str]]:
        return [(object_slug, store.record_id(object_slug, name)) for object_slug, name in records]

    review = Meeting(
        id=seed_id(slug, "meeting", "acme-quarterly-review"),
        title="Acme quarterly review",
        description="Usage, open issues and the expansion.",
        start="2024-01-16T10:00:00.000+00:00",
        end="2024-01-16T11:00:00.000+00:00",
        timezone="Europe/London",
        is_all_day=False,
        participants=[
            Participant(f"alice@{slug}.test", is_organizer=True),
            Participant("ada@acme.com"),
        ],
        linked_records=linked(("companies", "Acme Corp"), ("people", "Ada Lovelace")),
        created_by_actor=alice,
        created_at="2024-01-15T12:00:00.000000000Z",
    )
    recording = CallRecording(
        id=seed_id(slug, "call-recording", "acme-quarterly-review"),
        meeting_id=review.id,
        status="completed",
        created_by_actor=alice,
        created_at="2024-01-16T11:05:00.000000000Z",
        transcript=[transcript_segment(i) for i in range(SEEDED_SEGMENTS)],
    )
    review.call_recordings[recording.id] = recording
    renewal = Meeting(
        id=seed_id(slug, "meeting", "initech-renewal-call"),
        title="Initech renewal call",
        description="",
        start="2024-01-18T15:00:00.000-05:00",
        end="2024-01-18T15:30:00.000-05:00",
        timezone="America/New_York",
        is_all_day=False,
        participants=[
            Participant(f"bob@{slug}.test", is_organizer=True),
            Participant("grace@initech.com", status="tentative"),
        ],
        linked_records=linked(("companies", "Initech"), ("people", "Grace Hopper")),
        created_by_actor=bob,
        created_at="2024-01-15T12:01:00.000000000Z",
    )
    offsite = Meeting(
        id=seed_id(slug, "meeting", "hooli-offsite"),
        title="Hooli offsite",
        description="A day at Hooli's campus.",
        start="2024-01-22",
        end="2024-01-23",
        timezone=None,
        is_all_day=True,
        participants=[
            Participant(f"alice@{slug}.test", is_organizer=True),
            Participant("alan@hooli.com", status="pending"),
        ],
        linked_records=linked(("companies", "Hooli"), ("people", "Alan Turing")),
        created_by_actor=alice,
        created_at="2024-01-15T12:02:00.000000000Z",
    )
    for meeting in (review, renewal, offsite):
        store.meetings[meeting.id] = meeting

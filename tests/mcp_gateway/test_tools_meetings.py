"""Meeting, call recording and transcript tools over MCP, against the fake Attio: what they
return, what Attio receives (cursors included), and how they answer mistakes."""

import pytest

from mcp_gateway.models import ToolCall
from tests.fake_attio import meetings
from tests.fake_attio.model import seed_id
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"
REVIEW = seed_id("acme", "meeting", "acme-quarterly-review")
RECORDING = seed_id("acme", "call-recording", "acme-quarterly-review")
RENEWAL = seed_id("acme", "meeting", "initech-renewal-call")


def titles(data: dict) -> list[str]:
    return [m["title"] for m in data["meetings"]]


# --- meetings -------------------------------------------------------------------------------


def test_list_meetings_gives_lean_meetings(call_tool, key, fake_attio):
    data = ok(call_tool(key, "list_meetings"))

    assert titles(data) == ["Acme quarterly review", "Initech renewal call", "Hooli offsite"]
    assert data["next_cursor"] is None
    acme = fake_attio.store("acme")
    assert data["meetings"][0] == {
        "meeting_id": REVIEW,
        "title": "Acme quarterly review",
        "start": "2024-01-16T10:00:00.000+00:00",
        "end": "2024-01-16T11:00:00.000+00:00",
        "is_all_day": False,
        "participants": [
            {"email": "alice@acme.test", "is_organizer": True, "status": "accepted"},
            {"email": "ada@acme.com", "is_organizer": False, "status": "accepted"},
        ],
        "linked_records": [
            {"object": "companies", "record_id": acme.record_id("companies", "Acme Corp")},
            {"object": "people", "record_id": acme.record_id("people", "Ada Lovelace")},
        ],
        "description": None,
    }
    offsite = data["meetings"][2]
    assert (offsite["start"], offsite["end"], offsite["is_all_day"]) == (
        "2024-01-22",
        "2024-01-23",
        True,
    )
    assert fake_attio.last("meetings.list").query == {"limit": "20"}


def test_list_meetings_sends_the_filters_as_attio_documents_them(call_tool, key, fake_attio):
    grace = fake_attio.record_id("people", "Grace Hopper")
    arguments = {
        "object": "people",
        "record_id": grace,
        "participants": ["grace@initech.com", "bob@acme.test"],
        "ends_from": "2024-01-18T15:00:00-05:00",
        "starts_before": "2024-01-19",
        "newest_first": True,
        "limit": 5,
    }
    data = ok(call_tool(key, "list_meetings", arguments))

    assert titles(data) == ["Initech renewal call"]
    assert fake_attio.last("meetings.list").query == {
        "limit": "5",
        "linked_object": "people",
        "linked_record_id": grace,
        "participants": "grace@initech.com,bob@acme.test",
        "ends_from": "2024-01-18T20:00:00Z",
        "starts_before": "2024-01-19T00:00:00Z",
        "sort": "start_desc",
    }


def follow_cursors(mcp, key: str, name: str, arguments: dict) -> list[dict]:
    """Every page of a tool's answer, in one session: each call passes the last page's
    `next_cursor` back as `cursor`."""

    async def body(client):
        pages, cursor = [], None
        while not pages or cursor:
            extra = {"cursor": cursor} if cursor else {}
            pages.append(ok(await client.call_tool(name, {**arguments, **extra})))
            cursor = pages[-1]["next_cursor"]
        return pages

    return mcp(key, body)


def test_list_meetings_pages_by_cursor(mcp, key, fake_attio):
    first, second = follow_cursors(mcp, key, "list_meetings", {"limit": 2})

    assert titles(first) == ["Acme quarterly review", "Initech renewal call"]
    assert titles(second) == ["Hooli offsite"]
    assert second["next_cursor"] is None
    assert fake_attio.last("meetings.list").query == {
        "limit": "2",
        "cursor": first["next_cursor"],
    }


def test_get_meeting_includes_the_description(call_tool, key, fake_attio):
    data = ok(call_tool(key, "get_meeting", {"meeting_id": RENEWAL}))

    assert data["title"] == "Initech renewal call"
    assert data["description"] == ""
    assert data["start"] == "2024-01-18T15:00:00.000-05:00"
    assert data["participants"][1] == {
        "email": "grace@initech.com",
        "is_organizer": False,
        "status": "tentative",
    }
    assert fake_attio.last("meetings.get").path == f"/v2/meetings/{RENEWAL}"


def test_unknown_meeting_is_a_clear_404(call_tool, key, fake_attio):
    result = call_tool(key, "get_meeting", {"meeting_id": MISSING})

    assert result.is_error
    text = tool_text(result)
    assert f'Meeting with ID "{MISSING}" was not found.' in text
    assert "HTTP 404" in text
    assert "`list_meetings`" in text
    row = ToolCall.objects.get()
    assert (row.tool, row.ok, row.attio_status) == ("get_meeting", False, 404)


# --- call recordings and transcripts ----------------------------------------------------------


def test_list_and_get_call_recordings(run_tools, key, fake_attio):
    listed, one, none = run_tools(
        key,
        ("list_call_recordings", {"meeting_id": REVIEW}),
        ("get_call_recording", {"meeting_id": REVIEW, "call_recording_id": RECORDING}),
        ("list_call_recordings", {"meeting_id": RENEWAL, "limit": 1}),
    )

    recording = {
        "call_recording_id": RECORDING,
        "meeting_id": REVIEW,
        "status": "completed",
        "web_url": f"https://app.attio.com/acme/calls/{REVIEW}/{RECORDING}",
        "created_at": "2024-01-16T11:05:00.000000000Z",
    }
    assert ok(listed) == {"call_recordings": [recording], "next_cursor": None}
    assert ok(one) == recording
    assert ok(none) == {"call_recordings": [], "next_cursor": None}
    assert fake_attio.calls_to("call_recordings.list")[0].query == {"limit": "20"}
    assert fake_attio.last("call_recordings.get").path == (
        f"/v2/meetings/{REVIEW}/call_recordings/{RECORDING}"
    )


def test_get_transcript_pages_through_the_segments(mcp, key, fake_attio):
    arguments = {"meeting_id": REVIEW, "call_recording_id": RECORDING}
    first, second = follow_cursors(mcp, key, "get_transcript", arguments)

    segments = first["segments"] + second["segments"]
    assert len(first["segments"]) == meetings.TRANSCRIPT_PAGE_SIZE
    assert len(segments) == meetings.SEEDED_SEGMENTS
    assert second["next_cursor"] is None
    assert segments[0] == {
        "speaker": "Alice Anders",
        "start": 0.5,
        "end": 8.25,
        "text": "Thanks for joining, Ada. Shall we start with last quarter?",
    }
    assert segments[1]["speaker"] == "Ada Lovelace"
    assert segments[-1]["start"] == 290.5
    assert (first["meeting_id"], first["call_recording_id"]) == (REVIEW, RECORDING)
    first_call, second_call = fake_attio.calls_to("transcripts.get")
    assert first_call.query == {}
    assert second_call.query == {"cursor": first["next_cursor"]}
    assert second_call.path == f"/v2/meetings/{REVIEW}/call_recordings/{RECORDING}/transcript"


def test_unknown_recording_is_a_clear_404(call_tool, key):
    arguments = {"meeting_id": RENEWAL, "call_recording_id": RECORDING}
    result = call_tool(key, "get_transcript", arguments)

    assert result.is_error
    text = tool_text(result)
    assert "was not found" in text
    assert "`list_call_recordings`" in text


# --- scopes, read-only keys and bad arguments ------------------------------------------------


def test_missing_meeting_scope_names_the_scopes_to_ask_for(
    run_tools, alice, make_connection, make_key, fake_attio
):
    fake_attio.scopes = "record_permission:read-write object_configuration:read"
    _, key = make_key(make_connection(alice, "acme"))
    meeting, transcript = run_tools(
        key,
        ("list_meetings", {}),
        ("get_transcript", {"meeting_id": REVIEW, "call_recording_id": RECORDING}),
    )

    assert meeting.is_error and transcript.is_error
    assert "scopes `meeting:read` and `record_permission:read`" in tool_text(meeting)
    assert "scopes `meeting:read` and `call_recording:read`" in tool_text(transcript)
    assert "HTTP 403" in tool_text(meeting)
    assert "reconnect" in tool_text(meeting)
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.attio_status, r.error_code) for r in rows] == [
        ("list_meetings", False, 403, "missing_scope"),
        ("get_transcript", False, 403, "missing_scope"),
    ]


def test_read_only_key_can_read_meetings(run_tools, alice_connection, make_key, fake_attio):
    _, key = make_key(alice_connection, read_only=True)
    recording = {"meeting_id": REVIEW, "call_recording_id": RECORDING}
    results = run_tools(
        key,
        ("list_meetings", {}),
        ("get_meeting", {"meeting_id": REVIEW}),
        ("list_call_recordings", {"meeting_id": REVIEW}),
        ("get_call_recording", recording),
        ("get_transcript", recording),
    )

    assert [r.is_error for r in results] == [False] * 5, [tool_text(r) for r in results]
    assert [c.endpoint for c in fake_attio.calls] == [
        "meetings.list",
        "meetings.get",
        "call_recordings.list",
        "call_recordings.get",
        "transcripts.get",
    ]


BAD_ARGUMENTS = [
    ("get_meeting", {"meeting_id": "not-a-uuid"}, "meeting_id: must be a UUID"),
    ("get_meeting", {"meeting_id": "../x"}, "meeting_id: must be a UUID"),
    (
        "get_call_recording",
        {"meeting_id": REVIEW, "call_recording_id": "a%2fb"},
        "call_recording_id: must be a UUID",
    ),
    ("list_call_recordings", {"meeting_id": f"{REVIEW}/.."}, "meeting_id: must be a UUID"),
    ("list_meetings", {"object": "people"}, "Give both `object` and `record_id`"),
    ("list_meetings", {"record_id": MISSING}, "Give both `object` and `record_id`"),
    (
        "list_meetings",
        {"object": "../people", "record_id": MISSING},
        "object: must be a slug or a UUID",
    ),
    ("list_meetings", {"cursor": "c" * 1001}, "cursor: must have at most 1000 characters"),
    ("list_meetings", {"cursor": ""}, "cursor: must not be empty"),
    (
        "get_transcript",
        {"meeting_id": REVIEW, "call_recording_id": RECORDING, "cursor": "a b\n"},
        "cursor: is not in the expected form",
    ),
    ("list_meetings", {"participants": ["a@x.com,b@y.com"]}, "participants[0]"),
    ("list_meetings", {"ends_from": "next tuesday"}, "ends_from: must be an ISO 8601"),
    ("list_meetings", {"limit": 500}, "limit: must be at most 50"),
]


def test_bad_arguments_are_refused_before_attio(run_tools, key, fake_attio):
    results = run_tools(key, *[(name, arguments) for name, arguments, _ in BAD_ARGUMENTS])

    for (name, arguments, complaint), result in zip(BAD_ARGUMENTS, results, strict=True):
        text = tool_text(result)
        assert result.is_error, (name, arguments)
        assert complaint in text, (name, arguments, text)
    assert fake_attio.calls == []
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.attio_status) for r in rows] == [
        (name, False, None) for name, _, _ in BAD_ARGUMENTS
    ]

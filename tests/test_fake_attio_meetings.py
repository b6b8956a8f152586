"""Tests for the fake Attio's meetings, call recordings and transcripts
(tests/fake_attio/meetings.py); no database.

Every answer is checked against Attio's OpenAPI document (the strict fake checks its own
answers too, and raises if one breaks the document).
"""

from __future__ import annotations

import httpx
import pytest

from tests.fake_attio import FakeAttio, meetings, rest, spec
from tests.fake_attio.model import seed_id

API = "https://api.attio.com"
MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed id nothing has


@pytest.fixture
def fake() -> FakeAttio:
    return FakeAttio()


def client_for(fake: FakeAttio, workspace: str | None = None, scopes: str | None = None):
    token = fake.add_api_key(workspace, scopes=scopes)
    return httpx.Client(
        transport=fake.transport(),
        base_url=API,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def api(fake: FakeAttio):
    with client_for(fake) as client:
        yield client


def ok(response: httpx.Response, status: int = 200):
    """Assert the status, validate the body against the spec, return the JSON."""
    assert response.status_code == status, response.text
    body = response.json()
    spec.validate_response(response.request.method, response.request.url.path, status, body)
    return body


def error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    body = ok(response, status)
    assert body["status_code"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def titles(body: dict) -> list[str]:
    return [m["title"] for m in body["data"]]


def review_ids(workspace: str = "acme") -> tuple[str, str]:
    return (
        seed_id(workspace, "meeting", "acme-quarterly-review"),
        seed_id(workspace, "call-recording", "acme-quarterly-review"),
    )


# --- meetings ---------------------------------------------------------------------------


def test_meetings_list_in_start_order(fake, api):
    body = ok(api.get("/v2/meetings"))

    assert titles(body) == ["Acme quarterly review", "Initech renewal call", "Hooli offsite"]
    assert body["pagination"] == {"next_cursor": None}
    review = body["data"][0]
    assert review["id"] == {
        "workspace_id": fake.workspace("acme").id,
        "meeting_id": review_ids()[0],
    }
    assert review["start"] == {
        "datetime": "2024-01-16T10:00:00.000+00:00",
        "timezone": "Europe/London",
    }
    assert review["is_all_day"] is False
    assert review["participants"] == [
        {"status": "accepted", "is_organizer": True, "email_address": "alice@acme.test"},
        {"status": "accepted", "is_organizer": False, "email_address": "ada@acme.com"},
    ]
    store = fake.store("acme")
    assert review["linked_records"] == [
        {
            "object_slug": "companies",
            "object_id": store.objects["companies"].id,
            "record_id": store.record_id("companies", "Acme Corp"),
        },
        {
            "object_slug": "people",
            "object_id": store.objects["people"].id,
            "record_id": store.record_id("people", "Ada Lovelace"),
        },
    ]
    offsite = body["data"][2]
    assert (offsite["start"], offsite["end"]) == ({"date": "2024-01-22"}, {"date": "2024-01-23"})
    assert titles(ok(api.get("/v2/meetings", params={"sort": "start_desc"})))[0] == "Hooli offsite"


def test_meetings_page_by_cursor(api):
    first = ok(api.get("/v2/meetings", params={"limit": 2}))
    cursor = first["pagination"]["next_cursor"]
    second = ok(api.get("/v2/meetings", params={"limit": 2, "cursor": cursor}))

    assert titles(first) == ["Acme quarterly review", "Initech renewal call"]
    assert titles(second) == ["Hooli offsite"]
    assert second["pagination"]["next_cursor"] is None
    # A cursor belongs to its listing: other filters, or a tampered cursor, are refused.
    error(api.get("/v2/meetings", params={"cursor": cursor, "sort": "start_desc"}), 400)
    error(api.get("/v2/meetings", params={"cursor": cursor[:-1] + "0"}), 400)
    error(api.get("/v2/meetings", params={"limit": 201}), 400)


def test_meetings_filter_by_linked_record(fake, api):
    grace = fake.record_id("people", "Grace Hopper")
    body = ok(
        api.get("/v2/meetings", params={"linked_object": "people", "linked_record_id": grace})
    )
    assert titles(body) == ["Initech renewal call"]
    # The object by id works as well as by slug.
    companies = fake.store("acme").objects["companies"].id
    acme = fake.record_id("companies", "Acme Corp")
    params = {"linked_object": companies, "linked_record_id": acme}
    assert titles(ok(api.get("/v2/meetings", params=params))) == ["Acme quarterly review"]

    lonely = error(api.get("/v2/meetings", params={"linked_object": "people"}), 400)
    assert "together" in lonely["message"]
    error(api.get("/v2/meetings", params={"linked_record_id": grace}), 400)
    params = {"linked_object": "spaceships", "linked_record_id": grace}
    error(api.get("/v2/meetings", params=params), 404, "not_found")


def test_meetings_filter_by_participants(api):
    params = {"participants": "GRACE@initech.com, alan@hooli.com"}
    assert titles(ok(api.get("/v2/meetings", params=params))) == [
        "Initech renewal call",
        "Hooli offsite",
    ]
    params = {"participants": "nobody@example.com"}
    assert ok(api.get("/v2/meetings", params=params))["data"] == []


def test_meetings_filter_by_time(api):
    # ends_from is inclusive, starts_before exclusive.
    # The renewal call is 15:00-15:30 New York time, 20:00-20:30 UTC.
    params = {"ends_from": "2024-01-16T11:00:00Z", "starts_before": "2024-01-18T20:00:01Z"}
    assert titles(ok(api.get("/v2/meetings", params=params))) == [
        "Acme quarterly review",
        "Initech renewal call",
    ]
    params = {"ends_from": "2024-01-16T11:00:01Z", "starts_before": "2024-01-18T20:00:00Z"}
    assert titles(ok(api.get("/v2/meetings", params=params))) == []
    params = {"ends_from": "2024-01-18T15:30:00-05:00"}
    assert titles(ok(api.get("/v2/meetings", params=params))) == [
        "Initech renewal call",
        "Hooli offsite",
    ]
    # An all-day meeting's day is the request's timezone's day.
    params = {"starts_before": "2024-01-22T03:00:00Z"}
    assert "Hooli offsite" in titles(ok(api.get("/v2/meetings", params=params)))
    params["timezone"] = "America/Los_Angeles"
    assert "Hooli offsite" not in titles(ok(api.get("/v2/meetings", params=params)))

    error(api.get("/v2/meetings", params={"ends_from": "next tuesday"}), 400)
    error(api.get("/v2/meetings", params={"timezone": "Mars/Olympus"}), 400)


def test_meeting_get_and_404(fake, api):
    meeting_id, _ = review_ids()
    body = ok(api.get(f"/v2/meetings/{meeting_id}"))
    assert body["data"]["title"] == "Acme quarterly review"

    missing = error(api.get(f"/v2/meetings/{MISSING}"), 404, "not_found")
    assert MISSING in missing["message"]
    # Another workspace's meeting is not found here.
    error(api.get(f"/v2/meetings/{review_ids('globex')[0]}"), 404, "not_found")
    # A malformed id breaks the document's uuid format: a 400, and a recorded violation.
    error(api.get("/v2/meetings/not-a-uuid"), 400)
    assert fake.spec_violations[-1].kind == "request"


def test_deleted_record_is_no_longer_linked(fake, api):
    meeting_id, _ = review_ids()
    with fake.lock:
        fake.store("acme").delete_record(fake.record_id("people", "Ada Lovelace"))

    linked = ok(api.get(f"/v2/meetings/{meeting_id}"))["data"]["linked_records"]
    assert [r["object_slug"] for r in linked] == ["companies"]


# --- call recordings and transcripts ---------------------------------------------------------


def test_call_recordings_list_and_get(fake, api):
    meeting_id, recording_id = review_ids()
    body = ok(api.get(f"/v2/meetings/{meeting_id}/call_recordings"))

    assert body["pagination"] == {"next_cursor": None}
    [recording] = body["data"]
    assert recording["id"] == {
        "workspace_id": fake.workspace("acme").id,
        "meeting_id": meeting_id,
        "call_recording_id": recording_id,
    }
    assert recording["status"] == "completed"
    assert recording["web_url"].endswith(f"/calls/{meeting_id}/{recording_id}")
    one = ok(api.get(f"/v2/meetings/{meeting_id}/call_recordings/{recording_id}"))
    assert one["data"] == recording

    renewal = seed_id("acme", "meeting", "initech-renewal-call")
    assert ok(api.get(f"/v2/meetings/{renewal}/call_recordings"))["data"] == []
    error(api.get(f"/v2/meetings/{MISSING}/call_recordings"), 404, "not_found")
    error(api.get(f"/v2/meetings/{renewal}/call_recordings/{recording_id}"), 404, "not_found")


def test_call_recordings_page_by_cursor(fake, api):
    meeting_id, _ = review_ids()
    with fake.lock:
        meeting = fake.store("acme").meetings[meeting_id]
        second = meetings.CallRecording(
            id=MISSING.replace("0000-4000", "0000-4001"),
            meeting_id=meeting_id,
            status="processing",
            created_by_actor={"type": "system", "id": "recorder"},
            created_at="2024-01-16T11:30:00.000000000Z",
        )
        meeting.call_recordings[second.id] = second
    url = f"/v2/meetings/{meeting_id}/call_recordings"

    first = ok(api.get(url, params={"limit": 1}))
    rest_of = ok(api.get(url, params={"limit": 1, "cursor": first["pagination"]["next_cursor"]}))

    assert [r["status"] for r in first["data"] + rest_of["data"]] == ["completed", "processing"]
    assert rest_of["pagination"]["next_cursor"] is None


def test_transcript_pages_by_cursor(fake, api):
    meeting_id, recording_id = review_ids()
    url = f"/v2/meetings/{meeting_id}/call_recordings/{recording_id}/transcript"

    first = ok(api.get(url))
    cursor = first["pagination"]["next_cursor"]
    second = ok(api.get(url, params={"cursor": cursor}))

    segments = first["data"]["transcript"] + second["data"]["transcript"]
    assert len(first["data"]["transcript"]) == meetings.TRANSCRIPT_PAGE_SIZE
    assert len(segments) == meetings.SEEDED_SEGMENTS
    assert second["pagination"]["next_cursor"] is None
    assert segments[0] == {
        "speech": "Thanks for joining, Ada. Shall we start with last quarter?",
        "start_time": 0.5,
        "end_time": 8.25,
        "speaker": {"name": "Alice Anders"},
    }
    assert segments[1]["speaker"] == {"name": "Ada Lovelace"}
    assert [s["start_time"] for s in segments] == sorted(s["start_time"] for s in segments)
    assert first["data"]["id"]["call_recording_id"] == recording_id
    assert first["data"]["raw_transcript"].startswith("[00:00] Alice Anders: Thanks")
    # A meeting listing's cursor does not page a transcript.
    listing = ok(api.get("/v2/meetings", params={"limit": 1}))["pagination"]["next_cursor"]
    error(api.get(url, params={"cursor": listing}), 400)
    error(api.get(url.replace(recording_id, MISSING)), 404, "not_found")


# --- scopes ---------------------------------------------------------------------------------


def test_required_scopes_come_from_the_document():
    table = rest.required_scopes()
    assert table[("GET", "/v2/meetings")] == ("meeting:read", "record_permission:read")
    assert table[("GET", meetings.RECORDING + "/transcript")] == (
        "meeting:read",
        "call_recording:read",
    )


def test_missing_scope_is_a_403(fake):
    meeting_id, recording_id = review_ids()
    with client_for(fake, scopes="record_permission:read call_recording:read") as api:
        body = error(api.get("/v2/meetings"), 403, "missing_scope")
        assert body["message"].endswith("requires: meeting:read.")
        error(api.get(f"/v2/meetings/{meeting_id}"), 403, "missing_scope")
    with client_for(fake, scopes="meeting:read record_permission:read") as api:
        assert ok(api.get("/v2/meetings"))["data"]
        url = f"/v2/meetings/{meeting_id}/call_recordings/{recording_id}/transcript"
        body = error(api.get(url), 403, "missing_scope")
        assert "call_recording:read" in body["message"]
    # The fake's default grant has every scope the meeting tools need.
    with client_for(fake) as api:
        assert ok(api.get(f"/v2/meetings/{meeting_id}/call_recordings"))["data"]


def test_meetings_need_a_live_token(fake):
    with httpx.Client(transport=fake.transport(), base_url=API) as anonymous:
        error(anonymous.get("/v2/meetings"), 401)

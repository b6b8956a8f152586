"""How the tools meet Attio's failures: 4xx, missing scopes, outages, timeouts, rate
limits, expired and revoked tokens, and connections that need reconnecting."""

import re
import time

import httpx
import pytest
from django.conf import settings

from connections.models import Connection
from mcp_gateway.models import ToolCall
from tests.mcp_gateway.conftest import tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"
REFERENCE = re.compile(r"reference [0-9a-f]{12}")


@pytest.fixture
def ada(fake_attio):
    return fake_attio.record_id("people", "Ada Lovelace", workspace="acme")


def get_ada(ada) -> tuple[str, dict]:
    return "get_record", {"object": "people", "record_id": ada}


def new_note(ada) -> tuple[str, dict]:
    return "create_note", {
        "parent_object": "people",
        "parent_record_id": ada,
        "title": "t",
        "content": "c",
    }


def audit() -> tuple:
    call = ToolCall.objects.get()
    return call.ok, call.attio_status, call.error_code


# --- arguments that don't fit the tool ------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("get_record", {"object": "people", "record_id": "Ada"}, "record_id: must be a UUID"),
        (
            "create_note",
            {"parent_object": "people", "parent_record_id": MISSING, "content": "c"},
            "title: required",
        ),
        ("query_records", {"object": "people", "limit": "ten"}, "limit: must be a whole number"),
        ("get_record", {"object": ["people"], "record_id": MISSING}, "object: must be a string"),
        ("query_records", {"object": "people", "limit": 501}, "limit: must be at most 500"),
        (
            "list_attributes",
            {"target": "records", "identifier": "people"},
            "target: must be 'objects' or 'lists'",
        ),
    ],
    ids=["bad-uuid", "missing", "wrong-type", "wrong-type-list", "out-of-range", "unknown-enum"],
)
def test_arguments_that_do_not_fit_are_named_in_the_portals_words(
    call_tool, alice_key, fake_attio, tool, arguments, message
):
    result = call_tool(alice_key[1], tool, arguments)

    assert result.is_error
    text = tool_text(result)
    assert text == f"Error executing tool {tool}: invalid arguments.\n{message}"
    assert "pydantic" not in text
    # The tool error as the SDK gives it, a text block and no structured content.
    assert [block.type for block in result.content] == ["text"]
    assert result.structured_content is None
    assert fake_attio.calls == []
    assert audit() == (False, None, "tool_error")


def test_every_argument_that_does_not_fit_gets_a_line(call_tool, alice_key, fake_attio):
    arguments = {
        "content": "x" * 2001,
        "deadline_at": "next tuesday",
        "assignees": ["bob"],
        "linked_records": [{"object": "people"}, {"object": "people", "record_id": "1"}],
        "is_completed": "sometimes",
    }
    result = call_tool(alice_key[1], "create_task", arguments)

    assert tool_text(result).splitlines() == [
        "Error executing tool create_task: invalid arguments.",
        "content: must have at most 2000 characters",
        "deadline_at: must be an ISO 8601 date or date-time, e.g. 2025-06-30T17:00:00Z",
        "assignees[0]: must be a workspace member's UUID or email address",
        "linked_records[0].record_id: required",
        "linked_records[1].record_id: must be a UUID",
        "is_completed: must be true or false",
    ]


def test_nested_and_keyed_arguments_are_named_by_their_path(run_tools, alice_key, fake_attio):
    sorts, values = run_tools(
        alice_key[1],
        ("query_records", {"object": "people", "sorts": [{"direction": "asc"}, {"x": 1}]}),
        ("create_record", {"object": "people", "values": {"first name": "Ada"}}),
    )

    assert tool_text(sorts).splitlines()[1:] == [
        "sorts[0]: give exactly one of `attribute` or `path`",
        "sorts[1].direction: required",
        "sorts[1].x: unknown field",
    ]
    assert tool_text(values).splitlines()[1:] == [
        "values: key 'first name' must be a slug or a UUID (letters, digits, '-' and '_' only)"
    ]
    assert fake_attio.calls == []


# --- Attio refuses --------------------------------------------------------------------------


def test_not_found_carries_attios_message_code_reference_and_next_step(
    call_tool, alice_key, fake_attio
):
    result = call_tool(alice_key[1], *get_ada(MISSING))

    assert result.is_error
    text = tool_text(result)
    assert f'Attio: Record with ID "{MISSING}" was not found.' in text
    assert "code: not_found, HTTP 404" in text
    assert REFERENCE.search(text)
    assert "`search_records`" in text
    assert audit() == (False, 404, "not_found")


def test_attios_raw_error_body_is_not_passed_through(call_tool, alice_key, fake_attio, ada):
    body = {
        "status_code": 400,
        "type": "invalid_request_error",
        "code": "validation_type",
        "message": "Bad value.",
        "internal": "do-not-show",
    }
    fake_attio.fail_next("records.get", status=400, body=body)
    result = call_tool(alice_key[1], *get_ada(ada))

    text = tool_text(result)
    assert "Attio: Bad value. (code: validation_type, HTTP 400" in text
    assert "do-not-show" not in text
    assert "invalid_request_error" not in text


def test_missing_scope(call_tool, alice, make_connection, make_key, fake_attio, ada):
    fake_attio.scopes = "record_permission:read object_configuration:read note:read"
    _, key = make_key(make_connection(alice, "acme"))
    result = call_tool(key, *new_note(ada))

    assert result.is_error
    text = tool_text(result)
    assert "missing the scope(s) this operation requires: note:read-write" in text
    assert "code: missing_scope, HTTP 403" in text
    assert "permission (scope)" in text
    assert "reconnect" in text
    assert fake_attio.count("notes.create") == 1
    assert audit() == (False, 403, "missing_scope")


# --- Attio fails ------------------------------------------------------------------------------


def test_server_error_on_a_read_is_retried(call_tool, alice_key, fake_attio, ada):
    fake_attio.fail_next("records.get", status=500)
    result = call_tool(alice_key[1], *get_ada(ada))

    assert not result.is_error
    assert [c.status for c in fake_attio.calls_to("records.get")] == [500, 200]
    assert audit() == (True, 200, "")


def test_server_error_on_a_query_is_retried_like_a_read(call_tool, alice_key, fake_attio):
    fake_attio.fail_next("records.query", status=503)
    result = call_tool(alice_key[1], "query_records", {"object": "people"})

    assert not result.is_error
    assert fake_attio.count("records.query") == 2


def test_server_errors_on_a_read_end_in_an_error(call_tool, alice_key, fake_attio, ada):
    fake_attio.fail_next("records.get", status=500, times=3)
    result = call_tool(alice_key[1], *get_ada(ada))

    assert result.is_error
    text = tool_text(result)
    assert "Attio is unavailable (HTTP 500)" in text
    assert "try again in a minute" in text
    assert REFERENCE.search(text)
    assert fake_attio.count("records.get") == 3
    assert audit() == (False, 500, "internal_server_error")


def test_server_error_on_a_write_is_not_retried(call_tool, alice_key, fake_attio, ada):
    fake_attio.fail_next("notes.create", status=500)
    result = call_tool(alice_key[1], *new_note(ada))

    assert result.is_error
    text = tool_text(result)
    assert "Attio did not confirm the change: check whether it was applied" in text
    assert fake_attio.count("notes.create") == 1
    assert audit() == (False, 500, "internal_server_error")


def test_timeouts_on_a_read_are_retried_then_reported(call_tool, alice_key, fake_attio, ada):
    fake_attio.fail_next("records.get", exception=httpx.ReadTimeout, times=3)
    result = call_tool(alice_key[1], *get_ada(ada))

    assert result.is_error
    text = tool_text(result)
    assert "Attio timed out" in text
    assert "no answer" in text
    assert fake_attio.count("records.get") == 3
    assert audit() == (False, None, "ReadTimeout")


def test_timeout_on_a_write_is_not_retried(call_tool, alice_key, fake_attio, ada):
    fake_attio.fail_next("notes.create", exception=httpx.ReadTimeout)
    result = call_tool(alice_key[1], *new_note(ada))

    assert result.is_error
    assert "check whether it was applied" in tool_text(result)
    assert fake_attio.count("notes.create") == 1
    assert audit() == (False, None, "ReadTimeout")


def test_a_write_that_never_connected_is_retried(call_tool, alice_key, fake_attio, ada):
    # Nothing reached Attio, so sending it again cannot apply it twice.
    fake_attio.fail_next("notes.create", exception=httpx.ConnectError)
    result = call_tool(alice_key[1], *new_note(ada))

    assert not result.is_error
    assert len(fake_attio.store("acme").notes) == 2


# --- rate limits -----------------------------------------------------------------------------


def test_rate_limit_is_waited_out_then_the_call_succeeds(call_tool, alice_key, fake_attio):
    fake_attio.rate_limit_next("records.query", retry_after=1)
    started = time.monotonic()
    result = call_tool(alice_key[1], "query_records", {"object": "people"})

    assert not result.is_error
    assert [c.status for c in fake_attio.calls_to("records.query")] == [429, 200]
    assert time.monotonic() - started < 5
    assert audit() == (True, 200, "")


def test_rate_limit_on_a_write_is_waited_out_too(call_tool, alice_key, fake_attio, ada):
    # A 429 means Attio did not process the request, so a write may be sent again.
    fake_attio.rate_limit_next("notes.create", retry_after=1, http_date=False)
    result = call_tool(alice_key[1], *new_note(ada))

    assert not result.is_error
    assert fake_attio.count("notes.create") == 2


def test_rate_limit_past_the_wait_budget_is_reported(call_tool, alice_key, fake_attio):
    fake_attio.rate_limit_next("records.query", retry_after=60)
    started = time.monotonic()
    result = call_tool(alice_key[1], "query_records", {"object": "people"})

    assert result.is_error
    text = tool_text(result)
    assert "rate limit" in text
    assert "code: rate_limit_exceeded, HTTP 429" in text
    assert time.monotonic() - started < 5
    assert fake_attio.count("records.query") == 1
    assert audit() == (False, 429, "rate_limit_exceeded")


# --- tokens Attio no longer accepts ----------------------------------------------------------


def test_expired_token_is_refreshed_and_the_call_retried(
    refreshing_attio, call_tool, alice_key, ada
):
    key, plaintext = alice_key
    old_token = key.connection.access_token()
    refreshing_attio.expire(old_token)
    result = call_tool(plaintext, *get_ada(ada))

    assert not result.is_error
    assert result.structured_content["name"] == "Ada Lovelace"
    assert refreshing_attio.count("refresh") == 1
    calls = refreshing_attio.calls_to("records.get")
    assert [c.status for c in calls] == [401, 200]
    connection = Connection.objects.get(pk=key.connection_id)
    assert calls[1].headers["authorization"] == f"Bearer {connection.access_token()}"
    assert connection.access_token() != old_token
    assert audit() == (True, 200, "")


def test_second_401_asks_to_reconnect(refreshing_attio, call_tool, alice_key, ada):
    refreshing_attio.fail_next("records.get", status=401, times=2)
    result = call_tool(alice_key[1], *get_ada(ada))

    assert result.is_error
    text = tool_text(result)
    assert "needs to be reconnected" in text
    assert f"Reconnect it at {settings.PORTAL_BASE_URL}/" in text
    assert refreshing_attio.count("refresh") == 1
    assert refreshing_attio.count("records.get") == 2
    assert audit() == (False, 401, "needs_reconnect")


def test_revoked_token_marks_the_connection_and_asks_to_reconnect(
    call_tool, alice_key, fake_attio, ada
):
    key, plaintext = alice_key
    fake_attio.deactivate(key.connection.access_token())
    result = call_tool(plaintext, *get_ada(ada))

    assert result.is_error
    assert f"Reconnect it at {settings.PORTAL_BASE_URL}/" in tool_text(result)
    # Attio was asked about the token once, and the call was not sent again.
    assert fake_attio.count("self") == 1
    assert fake_attio.count("records.get") == 1
    connection = Connection.objects.get(pk=key.connection_id)
    assert connection.status == Connection.Status.NEEDS_RECONNECT


def test_connection_needing_reconnect_is_not_sent_to_attio(
    call_tool, bob_connection, make_key, fake_attio, ada
):
    _, key = make_key(bob_connection)
    result = call_tool(key, *get_ada(ada))

    assert result.is_error
    text = tool_text(result)
    assert "needs to be reconnected" in text
    assert settings.PORTAL_BASE_URL in text
    assert fake_attio.calls == []
    assert audit() == (False, None, "needs_reconnect")

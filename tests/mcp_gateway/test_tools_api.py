"""`find_attio_operation` and `attio_request` over MCP, against the fake Attio: one
operation of each Attio area, read-only callers, and every request the portal refuses to
send (nothing reaches Attio then)."""

import json

import pytest
from django.forms.models import model_to_dict

from mcp_gateway.models import ToolCall
from mcp_gateway.tools import _call, api
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

RECORD = "/v2/objects/{object}/records/{record_id}"


@pytest.fixture
def read_only_key(alice_connection, make_key):
    return make_key(alice_connection, read_only=True)[1]


def request(method: str, path: str, **arguments) -> tuple[str, dict]:
    return ("attio_request", {"method": method, "path": path, **arguments})


def refused(result, *words: str) -> str:
    assert result.is_error
    text = tool_text(result)
    for word in words:
        assert word in text, text
    return text


# --- find_attio_operation ---------------------------------------------------------------------


def test_find_attio_operation_searches_by_words(call_tool, key, fake_attio):
    data = ok(call_tool(key, "find_attio_operation", {"query": "list meetings", "limit": 3}))

    assert data["matches"][0] == {"operation": "GET /v2/meetings", "summary": "List meetings"}
    assert len(data["matches"]) <= 3
    assert fake_attio.calls == []


def test_find_attio_operation_describes_one(call_tool, key):
    data = ok(call_tool(key, "find_attio_operation", {"operation": "POST /v2/notes"}))

    described = data["described"]
    assert described["operation"] == "POST /v2/notes"
    assert described["reads_only"] is False
    assert "title" in described["body"]["properties"]["data"]["required"]


def test_find_attio_operation_leaves_out_webhooks(run_tools, key):
    webhooks, described = run_tools(
        key,
        ("find_attio_operation", {"query": "webhooks", "limit": 20}),
        ("find_attio_operation", {"operation": "GET /v2/webhooks"}),
    )

    assert all("webhook" not in m["operation"] for m in ok(webhooks)["matches"])
    refused(described, "webhook")


def test_find_attio_operation_shows_read_only_callers_only_reads(call_tool, read_only_key):
    data = ok(call_tool(read_only_key, "find_attio_operation", {"query": "notes"}))

    found = [m["operation"] for m in data["matches"]]
    assert "GET /v2/notes" in found
    assert "POST /v2/notes" not in found and "DELETE /v2/notes/{note_id}" not in found


def test_find_attio_operation_names_the_closest_to_an_unknown_one(call_tool, key):
    result = call_tool(key, "find_attio_operation", {"operation": "GET /v2/notes/all"})

    refused(result, "not an operation", "GET /v2/notes")


# --- one operation of each area ------------------------------------------------------------------


def area_calls(store) -> list[tuple[str, str, tuple[str, dict]]]:
    """(area, fake endpoint, call) for one operation of each area the fake serves."""
    ada = store.record_id("people", "Ada Lovelace")
    acme = store.record_id("companies", "Acme Corp")
    entry = next(iter(store.entries.values()))
    note = next(iter(store.notes))
    task = next(iter(store.tasks))
    thread = next(iter(store.threads))
    comment = next(iter(store.comments))
    member = next(iter(store.members))
    meeting = next(iter(store.meetings))
    return [
        (
            "objects",
            "objects.get",
            request("GET", "/v2/objects/{object}", path_params={"object": "people"}),
        ),
        (
            "attributes",
            "attributes.list",
            request(
                "GET",
                "/v2/{target}/{identifier}/attributes",
                path_params={"target": "objects", "identifier": "deals"},
                query={"limit": 5, "show_archived": False},
            ),
        ),
        (
            "records",
            "records.get",
            request("GET", RECORD, path_params={"object": "people", "record_id": ada}),
        ),
        (
            "records",
            "records.values",
            request(
                "GET",
                f"{RECORD}/attributes/{{attribute}}/values",
                path_params={"object": "people", "record_id": ada, "attribute": "job_title"},
                query={"show_historic": True},
            ),
        ),
        (
            "records",
            "records.query",
            request(
                "POST",
                "/v2/objects/{object}/records/query",
                path_params={"object": "companies"},
                body={"filter": {"name": "Acme Corp"}, "limit": 5},
            ),
        ),
        (
            "records",
            "records.search",
            request(
                "POST",
                "/v2/objects/records/search",
                body={"query": "Ada", "objects": ["people"], "request_as": {"type": "workspace"}},
            ),
        ),
        (
            "records",
            "records.update",
            request(
                "PATCH",
                RECORD,
                path_params={"object": "people", "record_id": ada},
                body={"data": {"values": {"job_title": ["Analyst"]}}},
            ),
        ),
        (
            "lists",
            "lists.get",
            request("GET", "/v2/lists/{list}", path_params={"list": "sales_pipeline"}),
        ),
        (
            "entries",
            "entries.query",
            request(
                "POST",
                "/v2/lists/{list}/entries/query",
                path_params={"list": entry.list_slug},
                body={},
            ),
        ),
        (
            "entries",
            "entries.get",
            request(
                "GET",
                "/v2/lists/{list}/entries/{entry_id}",
                path_params={"list": entry.list_slug, "entry_id": entry.id},
            ),
        ),
        ("workspace members", "members.list", request("GET", "/v2/workspace_members")),
        (
            "workspace members",
            "members.get",
            request(
                "GET",
                "/v2/workspace_members/{workspace_member_id}",
                path_params={"workspace_member_id": member},
            ),
        ),
        (
            "notes",
            "notes.get",
            request("GET", "/v2/notes/{note_id}", path_params={"note_id": note}),
        ),
        (
            "notes",
            "notes.create",
            request(
                "POST",
                "/v2/notes",
                body={
                    "data": {
                        "parent_object": "companies",
                        "parent_record_id": acme,
                        "title": "Call",
                        "format": "plaintext",
                        "content": "Talked.",
                    }
                },
            ),
        ),
        (
            "tasks",
            "tasks.list",
            request("GET", "/v2/tasks", query={"limit": "10", "is_completed": "false"}),
        ),
        (
            "tasks",
            "tasks.get",
            request("GET", "/v2/tasks/{task_id}", path_params={"task_id": task}),
        ),
        (
            "threads",
            "threads.list",
            request("GET", "/v2/threads", query={"object": "companies", "record_id": acme}),
        ),
        (
            "threads",
            "threads.get",
            request("GET", "/v2/threads/{thread_id}", path_params={"thread_id": thread}),
        ),
        (
            "comments",
            "comments.get",
            request("GET", "/v2/comments/{comment_id}", path_params={"comment_id": comment}),
        ),
        ("self", "self", request("GET", "/v2/self")),
        ("meetings", "meetings.list", request("GET", "/v2/meetings", query={"limit": 2})),
        (
            "meetings",
            "meetings.get",
            request("GET", "/v2/meetings/{meeting_id}", path_params={"meeting_id": meeting}),
        ),
    ]


def test_attio_request_reaches_every_area(run_tools, key, acme, fake_attio):
    calls = area_calls(acme)
    results = run_tools(key, *[call for _, _, call in calls])

    for (area, endpoint, (_, arguments)), result in zip(calls, results, strict=True):
        data = ok(result)
        assert data["operation"] == f"{arguments['method']} {arguments['path']}", area
        assert data["cut"] is None
        assert isinstance(data["answer"], dict) and data["answer"], area
        assert fake_attio.count(endpoint) == 1, (area, endpoint)
    assert len(fake_attio.calls) == len(calls)
    ada = acme.records[acme.record_id("people", "Ada Lovelace")]
    assert ada.values["job_title"][0]["value"] == "Analyst"
    assert any(note.title == "Call" for note in acme.notes.values())


def test_a_schema_write_goes_through_when_the_connection_was_granted_it(
    call_tool, fake_attio, alice, make_connection, make_key
):
    fake_attio.scopes += " object_configuration:read-write"
    _, key = make_key(make_connection(alice, "acme"))
    path_params = {"target": "lists", "identifier": "sales_pipeline", "attribute": "priority"}
    data = ok(
        call_tool(
            key,
            *request(
                "POST",
                "/v2/{target}/{identifier}/attributes/{attribute}/options",
                path_params=path_params,
                body={"data": {"title": "Urgent"}},
            ),
        )
    )

    assert data["answer"]["data"]["title"] == "Urgent"
    assert fake_attio.last("options.create").path == (
        "/v2/lists/sales_pipeline/attributes/priority/options"
    )
    # A change to the schema, not to records or entries: no ids in the audit row.
    assert ToolCall.objects.get().record_ids == []


def test_a_schema_write_forgets_the_cached_schema(
    call_tool, fake_attio, alice, make_connection, make_key
):
    fake_attio.scopes += " object_configuration:read-write"
    connection = make_connection(alice, "acme")
    _, key = make_key(connection)
    _call.remember_slugs(connection.pk, "objects", "people", ["name"])

    ok(
        call_tool(
            key,
            *request(
                "POST",
                "/v2/{target}/{identifier}/attributes",
                path_params={"target": "objects", "identifier": "people"},
                body={
                    "data": {
                        "title": "Nickname",
                        "api_slug": "nickname",
                        "type": "text",
                        "description": None,
                        "is_required": False,
                        "is_unique": False,
                        "is_multiselect": False,
                        "config": {},
                    }
                },
            ),
        )
    )

    assert connection.pk not in _call.ATTRIBUTE_SLUGS


def test_confirm_is_refused_where_nothing_previews(call_tool, key, fake_attio):
    result = call_tool(key, *request("GET", "/v2/notes", confirm="x"))

    refused(result, "`confirm` is only for the deletes")
    assert fake_attio.calls == []


def test_query_values_are_sent_as_attio_expects_them(call_tool, key, fake_attio):
    arguments = {"target": "objects", "identifier": "deals"}
    ok(
        call_tool(
            key,
            *request(
                "GET",
                "/v2/{target}/{identifier}/attributes",
                path_params=arguments,
                query={"limit": 5, "show_archived": True},
            ),
        )
    )

    sent = fake_attio.last("attributes.list")
    assert sent.path == "/v2/objects/deals/attributes"
    assert sent.query == {"limit": "5", "show_archived": "true"}


# --- read-only callers ------------------------------------------------------------------------


def test_read_only_callers_see_both_tools(mcp, read_only_key):
    async def body(client):
        return {t.name for t in (await client.list_tools()).tools}

    assert {"attio_request", "find_attio_operation"} <= mcp(read_only_key, body)


def test_read_only_callers_may_read_with_attio_request(run_tools, read_only_key, acme, fake_attio):
    entry = next(iter(acme.entries.values()))
    results = run_tools(
        read_only_key,
        request("GET", "/v2/lists"),
        request(
            "POST",
            "/v2/objects/{object}/records/query",
            path_params={"object": "people"},
            body={"limit": 2},
        ),
        request(
            "POST",
            "/v2/lists/{list}/entries/query",
            path_params={"list": entry.list_slug},
            body={"limit": 2},
        ),
        request(
            "POST",
            "/v2/objects/records/search",
            body={"query": "Acme", "objects": ["companies"], "request_as": {"type": "workspace"}},
        ),
    )

    for result in results:
        ok(result)
    assert [c.endpoint for c in fake_attio.calls] == [
        "lists.list",
        "records.query",
        "entries.query",
        "records.search",
    ]


def test_read_only_callers_may_not_write_with_attio_request(
    run_tools, read_only_key, acme, fake_attio
):
    ada = acme.record_id("people", "Ada Lovelace")
    results = run_tools(
        read_only_key,
        request(
            "PATCH",
            RECORD,
            path_params={"object": "people", "record_id": ada},
            body={"data": {"values": {"job_title": ["Analyst"]}}},
        ),
        request("DELETE", "/v2/tasks/{task_id}", path_params={"task_id": next(iter(acme.tasks))}),
    )

    refused(results[0], "read-only", f"PATCH {RECORD}")
    refused(results[1], "read-only", "DELETE /v2/tasks/{task_id}")
    assert fake_attio.calls == []
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.error_code, r.operation) for r in rows] == [
        ("attio_request", False, "read_only_key", f"PATCH {RECORD}"),
        ("attio_request", False, "read_only_key", "DELETE /v2/tasks/{task_id}"),
    ]


@pytest.fixture
def read_only_grant(client, alice_connection):
    """Send one tool call with a connected app's read-only OAuth token; the HTTP answer."""
    from tests.mcp_gateway.test_oauth_server import get_tokens

    _, tokens = get_tokens(client, alice_connection)  # read only, preselected
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }

    def call(raw, name: str, arguments: dict):
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        return raw("POST", "/mcp", json=message, headers=headers)

    return call


def test_a_read_only_oauth_grant_writing_is_told_to_ask_for_more(read_only_grant, raw, fake_attio):
    task = next(iter(fake_attio.store("acme").tasks))
    arguments = {
        "method": "DELETE",
        "path": "/v2/tasks/{task_id}",
        "path_params": {"task_id": task},
    }
    answer = read_only_grant(raw, "attio_request", arguments)

    assert answer.status_code == 403
    assert answer.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert [c for c in fake_attio.calls if c.path.startswith("/v2/tasks")] == []
    assert ToolCall.objects.get().error_code == "insufficient_scope"


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        # Searching weighs every operation, writes too: that alone must not be a refusal.
        ("find_attio_operation", {"query": "create a task"}),
        ("attio_request", {"method": "GET", "path": "/v2/tasks"}),
    ],
)
def test_a_read_only_oauth_grant_may_search_and_read(read_only_grant, raw, name, arguments):
    answer = read_only_grant(raw, name, arguments)

    assert answer.status_code == 200
    assert ToolCall.objects.get().ok


# --- what is never sent -----------------------------------------------------------------------


def test_operations_the_portal_does_not_serve(run_tools, key, acme, fake_attio):
    results = run_tools(
        key,
        request("GET", "/v2/objects/people"),  # a concrete path, not the template
        request("GET", "/v2/webhooks"),
        request(
            "POST",
            "/v2/webhooks",
            body={"data": {"target_url": "https://attacker.example/", "subscriptions": []}},
        ),
        # The connection was granted object_configuration:read, not read-write.
        request(
            "POST",
            "/v2/{target}/{identifier}/attributes/{attribute}/options",
            path_params={"target": "objects", "identifier": "deals", "attribute": "stage"},
            body={"data": {"title": "New"}},
        ),
    )

    refused(results[0], "not an operation in Attio's API", "path_params")
    refused(results[1], "webhook")
    refused(results[2], "webhook")
    refused(results[3], "object_configuration:read-write")
    assert fake_attio.calls == []
    rows = ToolCall.objects.order_by("pk")
    assert [r.error_code for r in rows] == [
        "unknown_operation",
        "not_served",
        "not_served",
        "missing_scope",
    ]


# --- deletes: preview, then confirm ------------------------------------------------------------


def previewed_then_confirmed(mcp, key, preview_call, confirm_call):
    """Both answers, in one session: `confirm_call` is (name, arguments) with `confirm`
    set to the fingerprint of `preview_call`'s preview."""

    async def body(client):
        preview = await client.call_tool(*preview_call)
        fingerprint = ok(preview)["preview"]["fingerprint"]
        name, arguments = confirm_call
        return preview, await client.call_tool(name, {**arguments, "confirm": fingerprint})

    return mcp(key, body)


def test_deleting_a_record_previews_then_confirms(mcp, key, acme, fake_attio):
    ada = acme.record_id("people", "Ada Lovelace")
    delete = request("DELETE", RECORD, path_params={"object": "people", "record_id": ada})

    preview, confirmed = previewed_then_confirmed(mcp, key, delete, delete)

    assert "Ada Lovelace" in ok(preview)["preview"]["changes"][0]
    assert ok(confirmed)["preview"] is None
    assert fake_attio.count("records.delete") == 1
    assert ada not in acme.records
    rows = ToolCall.objects.order_by("pk")
    assert [r.operation for r in rows] == ["DELETE " + RECORD] * 2
    assert [r.record_ids for r in rows] == [[], [ada]]


def test_a_preview_alone_deletes_nothing(run_tools, key, acme, fake_attio):
    ada = acme.record_id("people", "Ada Lovelace")
    run_tools(key, request("DELETE", RECORD, path_params={"object": "people", "record_id": ada}))

    assert fake_attio.count("records.delete") == 0
    assert ada in acme.records


def test_removing_an_entry_previews_then_confirms(mcp, key, acme, fake_attio):
    entry = next(iter(acme.entries.values()))
    remove = request(
        "DELETE",
        "/v2/lists/{list}/entries/{entry_id}",
        path_params={"list": entry.list_slug, "entry_id": entry.id},
    )

    preview, confirmed = previewed_then_confirmed(mcp, key, remove, remove)

    assert "The record itself stays" in ok(preview)["preview"]["changes"][0]
    assert not confirmed.is_error
    assert fake_attio.count("entries.delete") == 1
    assert entry.id not in acme.entries


def test_a_fingerprint_of_delete_record_does_not_confirm_attio_request(mcp, key, acme, fake_attio):
    ada = acme.record_id("people", "Ada Lovelace")

    _, result = previewed_then_confirmed(
        mcp,
        key,
        ("delete_record", {"object": "people", "record_id": ada}),
        request("DELETE", RECORD, path_params={"object": "people", "record_id": ada}),
    )

    refused(result, "made for another call")
    assert fake_attio.count("records.delete") == 0


def test_requests_that_do_not_fit_the_document(run_tools, key, acme, fake_attio):
    ada = acme.record_id("people", "Ada Lovelace")
    results = run_tools(
        key,
        request("GET", RECORD, path_params={"object": "people"}),
        request("GET", "/v2/tasks", query={"colour": "red"}),
        request("POST", "/v2/notes", body={"data": {"parent_object": "people", "title": 3}}),
        request(
            "PATCH",
            RECORD,
            path_params={"object": "people", "record_id": ada},
            body={"data": {"values": {"job_title": "Analyst"}}},
        ),
    )

    refused(results[0], "path_params.record_id: required")
    refused(results[1], "query.colour: not a query parameter of GET /v2/tasks")
    text = refused(results[2], "body.data: missing required property", "'parent_record_id'")
    assert "body.data.title: expected a string, got an integer" in text
    assert 'find_attio_operation` with operation="POST /v2/notes"' in text
    refused(results[3], "body.data.values.job_title: expected an array, got a string")
    assert fake_attio.calls == []
    assert {r.error_code for r in ToolCall.objects.all()} == {"invalid_request"}


@pytest.mark.parametrize(
    "value",
    [
        "people/../lists",
        "..",
        "people%2f..%2flists",
        "people?limit=1",
        "people#x",
        "../../v2/webhooks",
    ],
)
def test_path_arguments_cannot_change_the_path(call_tool, key, fake_attio, value):
    result = call_tool(key, *request("GET", "/v2/objects/{object}", path_params={"object": value}))

    refused(result, "path_params.object: expected a slug or UUID")
    assert fake_attio.calls == []


def test_a_path_argument_is_quoted_whole(call_tool, key, fake_attio):
    result = call_tool(
        key, *request("GET", "/v2/lists/{list}", path_params={"list": "sales.pipeline"})
    )

    refused(result, "Attio:")  # Attio's 404: the list is not there, but it was asked for
    assert [c.path for c in fake_attio.calls] == ["/v2/lists/sales.pipeline"]


def test_an_oversized_body_is_refused(call_tool, key, fake_attio, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    body = {"data": {"values": {"description": ["x" * (api.MAX_REQUEST_CHARS + 1)]}}}
    result = call_tool(
        key,
        *request("PATCH", RECORD, path_params={"object": "people", "record_id": ada}, body=body),
    )

    refused(result, "longer than")
    assert fake_attio.calls == []
    assert ToolCall.objects.get().error_code == "too_large"


# --- the audit row and the answer -------------------------------------------------------------


def test_the_audit_row_has_the_operation_and_ids_but_no_values(call_tool, key, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    secret = "Chief Zebra Officer"
    ok(
        call_tool(
            key,
            *request(
                "PATCH",
                RECORD,
                path_params={"object": "people", "record_id": ada},
                body={"data": {"values": {"job_title": [secret]}}},
            ),
        )
    )

    row = ToolCall.objects.get()
    assert (row.tool, row.ok, row.operation, row.record_ids) == (
        "attio_request",
        True,
        f"PATCH {RECORD}",
        [ada],
    )
    assert row.attio_status == 200
    assert secret not in json.dumps(model_to_dict(row), default=str)


def test_creating_a_record_audits_its_id(call_tool, key, acme):
    data = ok(
        call_tool(
            key,
            *request(
                "POST",
                "/v2/objects/{object}/records",
                path_params={"object": "people"},
                body={"data": {"values": {"name": [{"first_name": "Mary", "last_name": "Somerville",
                                                     "full_name": "Mary Somerville"}]}}},
            ),
        )
    )  # fmt: skip

    made = data["answer"]["data"]["id"]["record_id"]
    assert made in acme.records
    assert ToolCall.objects.get().record_ids == [made]


def test_reads_audit_the_operation_without_ids(call_tool, key):
    ok(call_tool(key, *request("GET", "/v2/lists")))

    row = ToolCall.objects.get()
    assert (row.operation, row.record_ids) == ("GET /v2/lists", [])


def test_a_huge_answer_is_cut_with_a_way_to_ask_for_less(call_tool, key, monkeypatch):
    monkeypatch.setattr(api, "MAX_ANSWER_CHARS", 3000)
    data = ok(
        call_tool(
            key,
            *request(
                "POST",
                "/v2/objects/{object}/records/query",
                path_params={"object": "people"},
                body={"limit": 50},
            ),
        )
    )

    records = data["answer"]["data"]
    assert 0 < len(records) < 50
    assert len(json.dumps(data["answer"])) <= 3000
    assert "smaller `limit`" in data["cut"]


def test_attio_errors_come_back_as_tool_errors(call_tool, key, fake_attio):
    missing = "00000000-0000-4000-8000-000000000000"
    result = call_tool(
        key, *request("GET", RECORD, path_params={"object": "people", "record_id": missing})
    )

    refused(result, "Attio:", "HTTP 404")
    assert ToolCall.objects.get().attio_status == 404

"""Bulk writes over MCP: a preview per item that writes nothing, then the confirmed call
writes each item, paced, with one result per item; failed items don't stop the rest."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from mcp_gateway.models import ToolCall
from mcp_gateway.tools import bulk
from tests.mcp_gateway.conftest import MCP_URL, http_client, tool_text
from tests.mcp_gateway.test_tools_confirm import fingerprint, ok, sessions  # noqa: F401

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"


def preview_then_confirm(sessions, key, name, arguments, *, between=None):  # noqa: F811
    async def body(client):
        preview = await client.call_tool(name, arguments)
        if between is not None:
            between()
        confirmed = {**arguments, "confirm": fingerprint(preview)}
        return preview, await client.call_tool(name, confirmed)

    return sessions(body, key)


def record_named(acme, object: str, name: str) -> str | None:
    return next(
        (
            r.id
            for r in acme.records.values()
            if r.object_slug == object and r.values["name"][0].get("value") == name
        ),
        None,
    )


def test_bulk_upsert_previews_then_creates_and_updates(sessions, key, fake_attio, acme):  # noqa: F811
    hooli = acme.record_id("companies", "Hooli")
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [
            {"domains": "hooli.com", "name": "Hooli Inc"},
            {"domains": ["globex.com"], "name": "Globex"},
        ],
    }
    writes_between = []

    preview, confirmed = preview_then_confirm(
        sessions,
        key,
        "bulk_upsert_records",
        arguments,
        between=lambda: writes_between.append(fake_attio.count("records.assert")),
    )

    shown = ok(preview)
    assert shown["done"] is False
    assert [(i["action"], i["id"], i["name"]) for i in shown["items"]] == [
        ("update", hooli, "Hooli"),
        ("create", None, None),
    ]
    assert "creates 1 record(s), updates 1, skips 0" in shown["preview"]["changes"][0]
    assert writes_between == [0]

    data = ok(confirmed)
    globex = record_named(acme, "companies", "Globex")
    assert data["done"] is True and (data["written"], data["failed"]) == (2, 0)
    assert [(i["ok"], i["id"]) for i in data["items"]] == [(True, hooli), (True, globex)]
    assert acme.records[hooli].values["name"][0]["value"] == "Hooli Inc"
    assert fake_attio.count("records.assert") == 2
    row = ToolCall.objects.order_by("pk").last()
    assert (row.tool, row.ok, row.record_ids) == ("bulk_upsert_records", True, [hooli, globex])


def test_bulk_upsert_reports_each_failure_and_writes_the_rest(sessions, key, fake_attio, acme):  # noqa: F811
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [
            {"domains": "globex.com", "name": "Globex"},
            {"name": "No domain"},
            {"domains": "globex.com", "name": "Globex again"},
            {"domains": "umbrella.com", "name": "Umbrella", "categories": "No such option"},
            {"domains": "stark.com", "name": "Stark"},
        ],
    }

    preview, confirmed = preview_then_confirm(sessions, key, "bulk_upsert_records", arguments)

    assert [i["action"] for i in ok(preview)["items"]] == [
        "create",
        "skip",
        "skip",
        "create",
        "create",
    ]
    data = ok(confirmed)
    items = data["items"]
    assert [i["ok"] for i in items] == [True, False, False, False, True]
    assert (data["written"], data["failed"]) == (2, 3)
    assert "no value for `domains`" in items[1]["error"]
    assert "same `domains` as item 0" in items[2]["error"]
    assert 'Cannot find select option with title or ID "No such option"' in items[3]["error"]
    assert "reference" in items[3]["error"]  # in our words, with a reference
    # Invalid items were not sent; the one Attio refused did not stop the last.
    assert fake_attio.count("records.assert") == 3
    assert record_named(acme, "companies", "Stark") is not None
    assert record_named(acme, "companies", "Umbrella") is None
    # The call answered (ok), and its row says some items failed.
    row = ToolCall.objects.order_by("pk").last()
    assert (row.ok, row.error_code) == (True, "partial_failure")
    assert row.record_ids == [items[0]["id"], items[4]["id"]]


def test_one_record_written_two_ways_is_updated_once(sessions, key, fake_attio, acme):  # noqa: F811
    initech = acme.record_id("companies", "Initech")
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [
            {"domains": "initech.com", "name": "Initech"},
            {"domains": ["Initech.com"], "name": "Initech Two"},
        ],
    }

    preview, confirmed = preview_then_confirm(sessions, key, "bulk_upsert_records", arguments)

    assert [i["action"] for i in ok(preview)["items"]] == ["update", "skip"]
    assert "same `domains` as item 0" in ok(preview)["items"][1]["error"]
    assert [i["ok"] for i in ok(confirmed)["items"]] == [True, False]
    assert fake_attio.count("records.assert") == 1
    assert acme.records[initech].values["name"][0]["value"] == "Initech"


def test_odd_matching_values_are_answered_per_item(call_tool, key, fake_attio):
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [
            {"domains": [["nested.com"]]},
            {"domains": {"$or": 1}},
            {"domains": 12.5},
        ],
    }
    data = ok(call_tool(key, "bulk_upsert_records", arguments))

    assert data["done"] is False
    assert len(data["items"]) == 3
    for item in data["items"]:
        assert item["action"] in ("create", "skip")
        if item["action"] == "skip":
            assert item["error"].startswith("Attio: ")
    assert fake_attio.count("records.assert") == 0


def test_bulk_upsert_refuses_more_than_the_limit(call_tool, key, fake_attio):
    records = [{"domains": f"c{n}.com", "name": f"C{n}"} for n in range(bulk.MAX_ITEMS + 1)]
    arguments = {"object": "companies", "matching_attribute": "domains", "records": records}
    result = call_tool(key, "bulk_upsert_records", arguments)

    assert result.is_error
    assert f"records: must have at most {bulk.MAX_ITEMS} items" in tool_text(result)
    assert fake_attio.calls == []


def test_bulk_writes_are_paced(sessions, key, fake_attio):  # noqa: F811
    records = [{"domains": f"c{n}.com", "name": f"C{n}"} for n in range(6)]
    arguments = {"object": "companies", "matching_attribute": "domains", "records": records}

    _, confirmed = preview_then_confirm(sessions, key, "bulk_upsert_records", arguments)

    assert ok(confirmed)["written"] == 6
    # Sleeps never end early: the span is a floor, whatever the machine's load. Only the
    # first write reaching the fake late could shorten it, by far less than the slack.
    times = [c.time for c in fake_attio.calls_to("records.assert")]
    assert times[-1] - times[0] >= 5 / bulk.WRITES_PER_SECOND - 0.05


def test_bulk_calls_in_one_workspace_share_its_pace(
    sessions,  # noqa: F811
    key,
    alice_connection,
    make_key,
    fake_attio,
):
    """Two clients' bulk calls at once in one workspace: 8 writes take the time of 8 at
    WRITES_PER_SECOND, not of 4 (each call pacing itself alone)."""
    _, second_key = make_key(alice_connection, name="second client")

    def arguments(prefix):
        records = [{"domains": f"{prefix}{n}.com", "name": f"{prefix}{n}"} for n in range(4)]
        return {"object": "companies", "matching_attribute": "domains", "records": records}

    async def body(first, second):
        calls = [(first, arguments("a")), (second, arguments("b"))]
        previews = [await client.call_tool("bulk_upsert_records", a) for client, a in calls]
        confirmed = [
            client.call_tool("bulk_upsert_records", {**a, "confirm": fingerprint(preview)})
            for (client, a), preview in zip(calls, previews, strict=True)
        ]
        return await asyncio.gather(*confirmed)

    answers = sessions(body, key, second_key)

    assert [ok(a)["written"] for a in answers] == [4, 4]
    times = sorted(c.time for c in fake_attio.calls_to("records.assert"))
    assert len(times) == 8
    # A floor, as in test_bulk_writes_are_paced: each call alone would take ~0.3 s.
    assert times[-1] - times[0] >= 7 / bulk.WRITES_PER_SECOND - 0.05


def test_the_pacer_books_slots_per_workspace():
    clock = [100.0]
    pacer = bulk.WorkspacePacer(per_second=10, clock=lambda: clock[0])

    assert [pacer.book("acme") for _ in range(3)] == pytest.approx([100.0, 100.1, 100.2])
    assert pacer.book("initech") == 100.0  # another workspace waits for none of them
    clock[0] = 101.0
    assert pacer.book("acme") == 101.0  # slots past are not owed


def test_the_pacer_forgets_idle_workspaces_past_its_bound(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(bulk.WorkspacePacer, "MAX_WORKSPACES", 3)
    pacer = bulk.WorkspacePacer(per_second=10, clock=lambda: clock[0])
    for workspace in ("a", "b", "c"):
        pacer.book(workspace)
    clock[0] = 5.0
    pacer.book("d")  # the fourth: "a" to "c" are idle and forgotten

    assert set(pacer.next_free) == {"d"}


def test_bulk_upsert_is_not_written_when_a_record_changed_since(sessions, key, fake_attio, acme):  # noqa: F811
    hooli = acme.record_id("companies", "Hooli")
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [{"domains": "hooli.com", "name": "Hooli Inc"}, {"domains": "x.com"}],
    }

    def someone_renames_it():
        with fake_attio.lock:
            acme.records[hooli].values["name"][0]["value"] = "Hooli XYZ"

    _, confirmed = preview_then_confirm(
        sessions, key, "bulk_upsert_records", arguments, between=someone_renames_it
    )

    assert confirmed.is_error and "has changed since" in tool_text(confirmed)
    assert fake_attio.count("records.assert") == 0


def test_a_bulk_fingerprint_is_for_these_items_only(sessions, key, fake_attio):  # noqa: F811
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [{"domains": "globex.com", "name": "Globex"}],
    }

    async def body(client):
        preview = await client.call_tool("bulk_upsert_records", arguments)
        one_more = [*arguments["records"], {"domains": "stark.com", "name": "Stark"}]
        return await client.call_tool(
            "bulk_upsert_records",
            {**arguments, "records": one_more, "confirm": fingerprint(preview)},
        )

    refused = sessions(body, key)

    assert refused.is_error and "made for another call" in tool_text(refused)
    assert fake_attio.count("records.assert") == 0


def test_bulk_add_to_list_previews_then_adds(sessions, key, fake_attio, acme):  # noqa: F811
    hooli = acme.record_id("companies", "Hooli")
    acme_corp = acme.record_id("companies", "Acme Corp")
    ada = acme.record_id("people", "Ada Lovelace")
    entries_before = set(acme.entries)
    arguments = {
        "list": "sales_pipeline",
        "entries": [
            {"parent_object": "companies", "parent_record_id": hooli, "entry_values": {}},
            {
                "parent_object": "companies",
                "parent_record_id": acme_corp,
                "entry_values": {"stage": "Qualified"},
            },
            {"parent_object": "people", "parent_record_id": ada, "entry_values": {}},
            {"parent_object": "companies", "parent_record_id": MISSING, "entry_values": {}},
        ],
    }
    writes_between = []

    preview, confirmed = preview_then_confirm(
        sessions,
        key,
        "bulk_add_to_list",
        arguments,
        between=lambda: writes_between.append(fake_attio.count("entries.create")),
    )

    shown = ok(preview)
    assert [(i["action"], i["name"]) for i in shown["items"]] == [
        ("add", "Hooli"),
        ("add", "Acme Corp"),
        ("add", "Ada Lovelace"),
        ("skip", None),
    ]
    assert "Check the id or slug" in shown["items"][3]["error"]
    changes = shown["preview"]["changes"]
    assert changes[0] == "Adds 3 record(s) to the list `sales_pipeline`; skips 1."
    assert any("Acme Corp" in c and "already" in c for c in changes[1:])
    assert writes_between == [0]

    data = ok(confirmed)
    items = data["items"]
    assert [i["ok"] for i in items] == [True, True, False, False]
    assert 'holds records of companies, not of "people"' in items[2]["error"]
    added = [items[0]["id"], items[1]["id"]]
    assert set(acme.entries) - entries_before == set(added)
    assert acme.entries[added[1]].parent_record_id == acme_corp
    # Attio refused one; the missing record was never sent.
    assert fake_attio.count("entries.create") == 3
    row = ToolCall.objects.order_by("pk").last()
    assert (row.tool, row.ok, row.record_ids) == ("bulk_add_to_list", True, added)


def test_a_bulk_add_fingerprint_works_once(sessions, key, fake_attio, acme):  # noqa: F811
    hooli = acme.record_id("companies", "Hooli")
    arguments = {
        "list": "sales_pipeline",
        "entries": [{"parent_object": "companies", "parent_record_id": hooli}],
    }

    async def body(client):
        preview = await client.call_tool("bulk_add_to_list", arguments)
        confirmed = {**arguments, "confirm": fingerprint(preview)}
        return [await client.call_tool("bulk_add_to_list", confirmed) for _ in range(2)]

    first, second = sessions(body, key)

    assert ok(first)["written"] == 1
    # Hooli is now in the list: what the preview showed no longer holds.
    assert second.is_error and "has changed since" in tool_text(second)
    assert fake_attio.count("entries.create") == 1


def test_progress_reaches_the_client_when_it_sends_a_progress_token(sessions, key, fake_attio):  # noqa: F811
    """A call with a progress token is answered with an event stream (http.py), which
    carries the bulk write's progress before its result."""
    records = [{"domains": f"c{n}.com", "name": f"C{n}"} for n in range(3)]
    arguments = {"object": "companies", "matching_attribute": "domains", "records": records}
    progress = []

    async def note(value, total, message):
        progress.append((value, total))

    async def body(client):
        preview = await client.call_tool("bulk_upsert_records", arguments)
        confirmed = {**arguments, "confirm": fingerprint(preview)}
        return await client.call_tool("bulk_upsert_records", confirmed, progress_callback=note)

    assert ok(sessions(body, key))["written"] == 3
    assert progress == [(1, 3), (2, 3), (3, 3)]


def post_whoami(gateway, key: str, *, accept: str, meta: dict | None = None):
    """One raw tools/call POST to /mcp (stateless: no initialize needed)."""
    server, app = gateway
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    message["params"] = {"name": "whoami", "arguments": {}}
    if meta is not None:
        message["params"]["_meta"] = meta
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": accept,
        "MCP-Protocol-Version": "2025-06-18",
    }

    async def go():
        async with server.session_manager.run(), http_client(app, headers) as http:
            return await http.post(MCP_URL, json=message)

    return async_to_sync(go)()


BOTH = "application/json, text/event-stream"


@pytest.mark.parametrize(
    "accept, meta",
    [(BOTH, None), (BOTH, {"other": "x"}), ("application/json", {"progressToken": "p1"})],
)
def test_other_calls_are_answered_with_one_json_body(gateway, key, fake_attio, accept, meta):
    """No token, or a client that takes JSON only: one JSON body."""
    response = post_whoami(gateway, key, accept=accept, meta=meta)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["id"] == 7
    assert response.json()["result"]["structuredContent"]["portal_user"]


@pytest.mark.parametrize("token", [None, 1.5, {"a": 1}])
def test_a_progress_token_of_no_valid_type_is_the_sdks_error_in_json(
    gateway, key, fake_attio, token
):
    response = post_whoami(gateway, key, accept=BOTH, meta={"progressToken": token})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == -32602


@pytest.mark.parametrize("token", ["p1", 42])
def test_a_progress_token_gets_an_event_stream(gateway, key, fake_attio, token):
    response = post_whoami(gateway, key, accept=BOTH, meta={"progressToken": token})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert [e.get("id") for e in events] == [7]
    assert events[0]["result"]["structuredContent"]["portal_user"]


def test_a_connection_to_reconnect_fails_the_whole_preview(
    call_tool, bob_connection, make_key, fake_attio
):
    _, bob_key = make_key(bob_connection)
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [{"domains": "a.com"}, {"domains": "b.com"}],
    }
    result = call_tool(bob_key, "bulk_upsert_records", arguments)

    assert result.is_error
    assert "needs to be reconnected" in tool_text(result)
    assert ToolCall.objects.get().error_code == "needs_reconnect"


def test_read_only_key_cannot_call_bulk_tools(run_tools, alice_connection, make_key, fake_attio):
    _, read_only = make_key(alice_connection, read_only=True)
    results = run_tools(
        read_only,
        ("bulk_upsert_records", {"object": "companies", "matching_attribute": "domains"}),
        ("bulk_add_to_list", {"list": "sales_pipeline", "entries": []}),
    )

    for name, result in zip(["bulk_upsert_records", "bulk_add_to_list"], results, strict=True):
        assert result.is_error
        assert f"This API key is read-only, so it cannot call `{name}`" in tool_text(result)
    assert fake_attio.calls == []


def post_raw(gateway, body: bytes, headers: list[tuple[str, str]]):
    server, app = gateway

    async def go():
        async with server.session_manager.run(), http_client(app) as http:
            return await http.post(MCP_URL, content=body, headers=headers)

    return async_to_sync(go)()


@pytest.mark.parametrize("authorized", [False, True])
def test_a_deeply_nested_body_with_a_progress_token_is_no_500(gateway, key, authorized):
    body = b'{"jsonrpc": "2.0", "progressToken": ' + b"[" * 200_000
    headers = [("Accept", BOTH), ("Content-Type", "application/json")]
    if authorized:
        headers.append(("Authorization", f"Bearer {key}"))

    response = post_raw(gateway, body, headers)

    assert response.status_code == (400 if authorized else 401)


def whoami_with_a_token(accept_headers: list[str], key: str):
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    message["params"] = {"name": "whoami", "arguments": {}, "_meta": {"progressToken": "p"}}
    headers = [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")]
    headers += [("MCP-Protocol-Version", "2025-06-18")]
    return json.dumps(message).encode(), headers + [("Accept", a) for a in accept_headers]


@pytest.mark.parametrize(
    "accept, streamed",
    [
        (["*/*"], True),
        (["Application/JSON, Text/Event-Stream"], True),
        # The SDK reads the first Accept header only: this client takes JSON.
        (["application/json", "text/event-stream"], False),
    ],
)
def test_the_accept_header_is_read_as_the_sdk_reads_it(gateway, key, fake_attio, accept, streamed):
    response = post_raw(gateway, *whoami_with_a_token(accept, key))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "text/event-stream" if streamed else "application/json"
    )

"""Deleting a record and removing a list entry take two calls: a preview that changes
nothing and answers with a fingerprint, then the same call with `confirm`, which the
server checks (caller, call, age, and that nothing changed since)."""

import contextlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from attio_portal.asgi import dispatcher
from mcp_gateway.models import ToolCall
from mcp_gateway.server import build_server, gateway_app
from mcp_gateway.tools import _confirm
from tests.mcp_gateway.conftest import MCP_URL, http_client, ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")


@pytest.fixture
def sessions(gateway):
    """Run `body(client, ...)` with one MCP client per key, in one run of the gateway."""
    server, app = gateway

    def run(body, *keys: str):
        async def go():
            async with server.session_manager.run(), contextlib.AsyncExitStack() as stack:
                clients = []
                for key in keys:
                    headers = {"Authorization": f"Bearer {key}"}
                    http = await stack.enter_async_context(http_client(app, headers))
                    transport = streamable_http_client(MCP_URL, http_client=http)
                    clients.append(
                        await stack.enter_async_context(Client(transport, mode="legacy"))
                    )
                return await body(*clients)

        return async_to_sync(go)()

    return run


def fingerprint(result) -> str:
    return ok(result)["preview"]["fingerprint"]


def preview_then_confirm(sessions, key, name, arguments, *, between=None, confirm_arguments=None):
    """The preview, and the answer to the same call (or `confirm_arguments`) confirmed with
    the preview's fingerprint, `between()` running in between."""

    async def body(client):
        preview = await client.call_tool(name, arguments)
        if between is not None:
            between()
        confirmed = {**(confirm_arguments or arguments), "confirm": fingerprint(preview)}
        return preview, await client.call_tool(name, confirmed)

    return sessions(body, key)


def test_deleting_a_record_previews_then_deletes(sessions, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}
    seen = {}

    def between():
        seen["deletes"] = fake_attio.count("records.delete")
        seen["still_there"] = hooli in acme.records

    preview, confirmed = preview_then_confirm(
        sessions, key, "delete_record", arguments, between=between
    )

    shown = ok(preview)
    assert shown["deleted"] is False
    assert shown["id"] == hooli
    (change,) = shown["preview"]["changes"]
    assert "“Hooli”" in change and hooli in change and "domains: hooli.com" in change
    assert seen == {"deletes": 0, "still_there": True}
    # No secret and no argument value in the fingerprint.
    assert hooli not in shown["preview"]["fingerprint"]
    assert "companies" not in shown["preview"]["fingerprint"]

    assert ok(confirmed) == {"deleted": True, "kind": "record", "id": hooli, "preview": None}
    assert hooli not in acme.records
    assert fake_attio.last("records.delete").path == f"/v2/objects/companies/records/{hooli}"
    # The record was read again before it was deleted.
    assert fake_attio.count("records.get") == 2


def test_removing_a_list_entry_previews_then_removes(sessions, key, fake_attio, acme):
    acme_corp = acme.record_id("companies", "Acme Corp")
    entry_id = next(e.id for e in acme.entries.values() if e.parent_record_id == acme_corp)
    arguments = {"list": "sales_pipeline", "entry_id": entry_id}
    seen = {}

    preview, confirmed = preview_then_confirm(
        sessions,
        key,
        "remove_from_list",
        arguments,
        between=lambda: seen.update(deletes=fake_attio.count("entries.delete")),
    )

    (change,) = ok(preview)["preview"]["changes"]
    assert "“Acme Corp”" in change and "sales_pipeline" in change and entry_id in change
    assert seen == {"deletes": 0}
    assert ok(confirmed)["deleted"] is True
    assert entry_id not in acme.entries
    assert acme_corp in acme.records


def test_the_audit_trail_keeps_the_deleted_ids(sessions, key, acme):
    hooli = acme.record_id("companies", "Hooli")
    entry_id = next(iter(acme.entries))

    async def body(client):
        for name, arguments in (
            ("delete_record", {"object": "companies", "record_id": hooli}),
            ("remove_from_list", {"list": "sales_pipeline", "entry_id": entry_id}),
        ):
            preview = await client.call_tool(name, arguments)
            ok(await client.call_tool(name, {**arguments, "confirm": fingerprint(preview)}))

    sessions(body, key)

    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.record_ids) for r in rows] == [
        ("delete_record", True, []),
        ("delete_record", True, [hooli]),
        ("remove_from_list", True, []),
        ("remove_from_list", True, [entry_id]),
    ]


def test_a_stale_fingerprint_is_refused(sessions, key, fake_attio, acme, time_machine, settings):
    settings.MCP_CONFIRM_SECONDS = 300
    time_machine.move_to(timezone.now(), tick=True)
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    _, confirmed = preview_then_confirm(
        sessions,
        key,
        "delete_record",
        arguments,
        between=lambda: time_machine.shift(timedelta(seconds=301)),
    )

    assert confirmed.is_error
    assert "stale" in tool_text(confirmed) and "new preview" in tool_text(confirmed)
    assert hooli in acme.records
    assert fake_attio.count("records.delete") == 0
    # Refused before anything was read again.
    assert fake_attio.count("records.get") == 1
    assert ToolCall.objects.order_by("pk").last().error_code == "confirm_stale"


def test_a_fingerprint_within_its_minutes_still_works(sessions, key, acme, time_machine, settings):
    settings.MCP_CONFIRM_SECONDS = 300
    time_machine.move_to(timezone.now(), tick=True)
    hooli = acme.record_id("companies", "Hooli")

    _, confirmed = preview_then_confirm(
        sessions,
        key,
        "delete_record",
        {"object": "companies", "record_id": hooli},
        between=lambda: time_machine.shift(timedelta(seconds=290)),
    )

    assert ok(confirmed)["deleted"] is True


def test_a_fingerprint_for_other_arguments_is_refused(sessions, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    initech = acme.record_id("companies", "Initech")

    _, confirmed = preview_then_confirm(
        sessions,
        key,
        "delete_record",
        {"object": "companies", "record_id": hooli},
        confirm_arguments={"object": "companies", "record_id": initech},
    )

    assert confirmed.is_error
    assert "made for another call" in tool_text(confirmed)
    assert {hooli, initech} <= set(acme.records)
    assert fake_attio.count("records.delete") == 0


def test_a_fingerprint_for_another_tool_is_refused(sessions, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    entry_id = next(iter(acme.entries))

    async def body(client):
        preview = await client.call_tool(
            "delete_record", {"object": "companies", "record_id": hooli}
        )
        arguments = {"list": "sales_pipeline", "entry_id": entry_id}
        return await client.call_tool(
            "remove_from_list", {**arguments, "confirm": fingerprint(preview)}
        )

    refused = sessions(body, key)

    assert refused.is_error and "made for another call" in tool_text(refused)
    assert entry_id in acme.entries
    assert fake_attio.count("entries.delete") == 0


def test_another_users_fingerprint_is_refused(
    sessions, key, bob, make_connection, make_key, fake_attio, acme
):
    _, bob_key = make_key(make_connection(bob, "acme"))
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    async def body(alice_client, bob_client):
        preview = await alice_client.call_tool("delete_record", arguments)
        return await bob_client.call_tool(
            "delete_record", {**arguments, "confirm": fingerprint(preview)}
        )

    refused = sessions(body, key, bob_key)

    assert refused.is_error
    assert "made for another user, API key, app or connection" in tool_text(refused)
    assert hooli in acme.records
    assert fake_attio.count("records.delete") == 0
    assert ToolCall.objects.order_by("pk").last().error_code == "confirm_other_caller"


def test_another_key_of_the_same_user_is_refused(
    sessions, key, alice_connection, make_key, fake_attio, acme
):
    _, other_key = make_key(alice_connection, name="another key")
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    async def body(first, second):
        preview = await first.call_tool("delete_record", arguments)
        return await second.call_tool(
            "delete_record", {**arguments, "confirm": fingerprint(preview)}
        )

    refused = sessions(body, key, other_key)

    assert refused.is_error and "another user, API key" in tool_text(refused)
    assert hooli in acme.records


def test_a_record_changed_since_the_preview_is_not_deleted(sessions, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")

    def someone_edits_it():
        with fake_attio.lock:
            acme.records[hooli].values["domains"][0]["domain"] = "hooli.xyz"

    _, confirmed = preview_then_confirm(
        sessions,
        key,
        "delete_record",
        {"object": "companies", "record_id": hooli},
        between=someone_edits_it,
    )

    assert confirmed.is_error
    assert "has changed since" in tool_text(confirmed)
    assert hooli in acme.records
    assert fake_attio.count("records.delete") == 0
    assert ToolCall.objects.order_by("pk").last().error_code == "confirm_changed"


def test_an_entry_changed_since_the_preview_is_not_removed(sessions, key, fake_attio, acme):
    entry_id = next(iter(acme.entries))

    def someone_moves_it_on():
        with fake_attio.lock:
            acme.entries[entry_id].values["stage"][0]["active_from"] = "2030-01-01T00:00:00Z"

    _, confirmed = preview_then_confirm(
        sessions,
        key,
        "remove_from_list",
        {"list": "sales_pipeline", "entry_id": entry_id},
        between=someone_moves_it_on,
    )

    assert confirmed.is_error and "has changed since" in tool_text(confirmed)
    assert entry_id in acme.entries
    assert fake_attio.count("entries.delete") == 0


def test_a_fingerprint_is_confirmed_by_another_server_process(gateway, key, fake_attio, acme):
    """Nothing of a preview is kept in the process that made it: another gateway (here a
    second server, as another worker would be) confirms it."""
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    def one_call(server_and_app, arguments):
        server, app = server_and_app

        async def go():
            headers = {"Authorization": f"Bearer {key}"}
            async with server.session_manager.run(), http_client(app, headers) as http:
                transport = streamable_http_client(MCP_URL, http_client=http)
                async with Client(transport, mode="legacy") as client:
                    return await client.call_tool("delete_record", arguments)

        return async_to_sync(go)()

    preview = one_call(gateway, arguments)
    other = build_server()
    confirmed = one_call(
        (other, dispatcher(gateway_app(other))),
        {
            **arguments,
            "confirm": fingerprint(preview),
        },
    )

    assert ok(confirmed)["deleted"] is True
    assert hooli not in acme.records


def test_a_fingerprint_works_once(sessions, key, fake_attio, acme):
    entry_id = next(iter(acme.entries))
    arguments = {"list": "sales_pipeline", "entry_id": entry_id}

    async def body(client):
        preview = await client.call_tool("remove_from_list", arguments)
        confirmed = {**arguments, "confirm": fingerprint(preview)}
        return [await client.call_tool("remove_from_list", confirmed) for _ in range(2)]

    first, second = sessions(body, key)

    assert ok(first)["deleted"] is True
    # The entry is gone: reading it again, to check, finds nothing.
    assert second.is_error and "not found" in tool_text(second).lower()
    assert fake_attio.count("entries.delete") == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda f: f[:-1] + ("A" if f[-1] != "A" else "B"),  # the signature
        lambda f: ("0" if f[0] != "0" else "1") + f[1:],  # the caller's digest
        lambda f: f.split(":", 1)[0],  # without timestamp and signature
        lambda f: "not-a-fingerprint",
    ],
)
def test_a_tampered_fingerprint_is_refused(sessions, key, fake_attio, acme, tamper):
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    async def body(client):
        preview = await client.call_tool("delete_record", arguments)
        forged = tamper(fingerprint(preview))
        return await client.call_tool("delete_record", {**arguments, "confirm": forged})

    refused = sessions(body, key)

    assert refused.is_error
    assert "not a fingerprint the portal made" in tool_text(refused)
    assert hooli in acme.records
    assert fake_attio.count("records.delete") == 0
    assert fake_attio.count("records.get") == 1


def test_a_missing_record_is_answered_by_the_preview(call_tool, key, fake_attio):
    missing = "00000000-0000-4000-8000-000000000000"
    result = call_tool(key, "delete_record", {"object": "companies", "record_id": missing})

    assert result.is_error
    assert "Check the id or slug" in tool_text(result)
    assert fake_attio.count("records.delete") == 0


def test_a_read_only_key_cannot_preview_a_delete(call_tool, alice_connection, make_key, acme):
    _, read_only = make_key(alice_connection, read_only=True)
    hooli = acme.record_id("companies", "Hooli")
    result = call_tool(read_only, "delete_record", {"object": "companies", "record_id": hooli})

    assert result.is_error and "read-only" in tool_text(result)


def test_the_state_digest_is_keyed_by_the_servers_secret(settings):
    state = {"domains": [{"domain": "hooli.com"}]}
    first = _confirm.digest("state", state)
    settings.SECRET_KEY = "another secret " * 4

    assert _confirm.digest("state", state) != first

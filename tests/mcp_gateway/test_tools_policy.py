"""The tool catalogue as keys see it, read-only keys, isolation between users, and the
audit trail of tool calls."""

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError
from django.forms.models import model_to_dict

from mcp_gateway import tools
from mcp_gateway.models import ToolCall
from mcp_gateway.policy import AuditTrail
from tests.mcp_gateway.conftest import tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"

READ_TOOLS = {
    "whoami",
    "list_objects",
    "list_attributes",
    "search_records",
    "query_records",
    "get_record",
    "get_value_history",
    "list_record_entries",
    "list_notes",
    "get_note",
    "list_tasks",
    "list_lists",
    "get_list",
    "query_list_entries",
    "list_workspace_members",
    "get_workspace_member",
    "list_threads",
    "get_thread",
    "get_comment",
    "list_meetings",
    "get_meeting",
    "list_call_recordings",
    "get_call_recording",
    "get_transcript",
    "find_attio_operation",
}
WRITE_TOOLS = {
    "create_record",
    "update_record",
    "upsert_record",
    "delete_record",
    "create_note",
    "delete_note",
    "create_task",
    "update_task",
    "delete_task",
    "add_to_list",
    "update_list_entry",
    "remove_from_list",
    "create_comment",
    "delete_comment",
    "bulk_upsert_records",
    "bulk_add_to_list",
    "create_object",
    "update_object",
    "create_attribute",
    "update_attribute",
    "create_option",
    "update_option",
    "create_list",
    "update_list",
    "attio_request",
}
# Tools that can replace or remove what is already in Attio.
DESTRUCTIVE_TOOLS = {
    "update_record",
    "upsert_record",
    "delete_record",
    "delete_note",
    "update_task",
    "delete_task",
    "update_list_entry",
    "remove_from_list",
    "delete_comment",
    "bulk_upsert_records",
    "update_object",
    "update_attribute",
    "update_option",
    "update_list",
    "attio_request",
}
# Read-only callers see the read tools, and `attio_request`, which refuses them its writes.
READ_ONLY_SEES = READ_TOOLS | {"attio_request"}


def hint(annotations, name: str) -> bool:
    """A hint as a client reads it: MCP's default where tools/list leaves one out."""
    defaults = {
        "read_only_hint": False,
        "destructive_hint": True,
        "idempotent_hint": False,
        "open_world_hint": True,
    }
    value = getattr(annotations, name) if annotations is not None else None
    return defaults[name] if value is None else value


def list_tools(mcp, key):
    async def body(client):
        return (await client.list_tools()).tools

    return {t.name: t for t in mcp(key, body)}


def test_the_catalogue_is_complete():
    assert set(tools.REGISTRY) == READ_TOOLS | WRITE_TOOLS


def test_read_write_key_sees_every_tool_with_annotations(mcp, alice_key):
    listed = list_tools(mcp, alice_key[1])

    assert set(listed) == READ_TOOLS | WRITE_TOOLS
    for name, tool in listed.items():
        # Hints at MCP's defaults are left out, all of them for some tools (tools.definitions).
        hints = tool.annotations
        assert hint(hints, "read_only_hint") is (name in READ_TOOLS), name
        if name not in READ_TOOLS:
            # (Meaningless for a tool that only reads.)
            assert hint(hints, "destructive_hint") is (name in DESTRUCTIVE_TOOLS), name
        assert hint(hints, "open_world_hint") is True, name
        assert tool.title is None, name  # not sent (tools.definitions); the name is shown
        assert len(tool.description.split()) >= 4, name
        # Not sent: models aren't shown it (tools.definitions); results still carry
        # structuredContent (test_tool_list_size.py).
        assert tool.output_schema is None, name
        assert tool.input_schema["type"] == "object", name
    # Deleting twice leaves things as deleting once; creating twice does not.
    assert hint(listed["delete_record"].annotations, "idempotent_hint") is True
    assert hint(listed["create_record"].annotations, "idempotent_hint") is False


def test_every_argument_is_described(mcp, alice_key):
    for name, tool in list_tools(mcp, alice_key[1]).items():
        for argument, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), (name, argument)


def test_read_only_key_sees_only_read_tools(mcp, alice_connection, make_key):
    _, key = make_key(alice_connection, read_only=True)
    listed = list_tools(mcp, key)

    assert set(listed) == READ_ONLY_SEES
    assert all(hint(listed[name].annotations, "read_only_hint") for name in READ_TOOLS)
    assert all(t.description.strip() for t in listed.values())


def test_read_only_key_is_refused_write_tools(run_tools, alice_connection, make_key, fake_attio):
    _, key = make_key(alice_connection, read_only=True)
    # (`attio_request` refuses its own writes: test_tools_api.py.)
    names = sorted(WRITE_TOOLS - {"attio_request"})
    arguments = {"object": "people", "values": {"name": "x"}}
    results = run_tools(key, *[(name, arguments) for name in names])

    for name, result in zip(names, results, strict=True):
        assert result.is_error, name
        assert f"This API key is read-only, so it cannot call `{name}`" in tool_text(result)
    assert fake_attio.calls == []
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.error_code, r.attio_status) for r in rows] == [
        (name, False, "read_only_key", None) for name in names
    ]


def test_read_only_key_can_read(call_tool, alice_connection, make_key, fake_attio):
    _, key = make_key(alice_connection, read_only=True)
    result = call_tool(key, "list_lists")

    assert not result.is_error
    assert fake_attio.count("lists.list") == 1


# --- isolation --------------------------------------------------------------------------------


@pytest.fixture
def charlie_globex(charlie, make_connection, fake_attio):
    """Charlie's connection to another workspace, with a person only Globex has."""
    connection = make_connection(charlie, "globex")
    globex = fake_attio.store("globex")
    with fake_attio.lock:
        record = globex.records[globex.record_id("people", "Ada Lovelace")]
        record.values["job_title"][0]["value"] = "Globex secret"
    return connection


@pytest.fixture
def dave_acme(make_user, make_connection):
    """Dave's own connection to the same Acme workspace as Alice."""
    return make_connection(make_user("dave"), "acme")


def test_a_key_reaches_only_its_own_connection(
    run_tools, alice_key, charlie_globex, dave_acme, fake_attio
):
    key, plaintext = alice_key
    globex = fake_attio.store("globex")
    globex_ada = globex.record_id("people", "Ada Lovelace")
    results = run_tools(
        plaintext,
        ("query_records", {"object": "people", "limit": 100}),
        ("search_records", {"query": "Ada"}),
        ("get_record", {"object": "people", "record_id": globex_ada}),
        ("list_workspace_members", {}),
    )
    everything = " ".join(tool_text(r) for r in results)

    acme = fake_attio.store("acme")
    people = results[0].structured_content["records"]
    assert {p["record_id"] for p in people} <= set(acme.records)
    assert results[1].structured_content["results"][0]["record_id"] == acme.record_id(
        "people", "Ada Lovelace"
    )
    assert results[2].is_error  # Globex's record is not in Acme
    assert "Globex secret" not in everything
    assert globex.workspace_id not in everything
    # Attio only ever saw Alice's own token: not Charlie's, not Dave's, not the portal key.
    tokens = {c.headers["authorization"] for c in fake_attio.calls}
    assert tokens == {f"Bearer {key.connection.access_token()}"}


def test_each_key_uses_its_owners_connection(run_tools, make_key, charlie_globex, fake_attio):
    _, key = make_key(charlie_globex)
    [result] = run_tools(
        key,
        (
            "get_record",
            {
                "object": "people",
                "record_id": fake_attio.store("globex").record_id("people", "Ada Lovelace"),
            },
        ),
    )

    assert result.structured_content["values"]["job_title"] == "Globex secret"
    assert {c.headers["authorization"] for c in fake_attio.calls} == {
        f"Bearer {charlie_globex.access_token()}"
    }


# --- the audit trail ---------------------------------------------------------------------------


def test_one_audit_row_per_call_without_arguments(run_tools, alice_key, fake_attio):
    key, plaintext = alice_key
    ada = fake_attio.record_id("people", "Ada Lovelace", workspace="acme")
    run_tools(
        plaintext,
        ("get_record", {"object": "people", "record_id": ada}),
        ("get_record", {"object": "people", "record_id": MISSING}),
        ("get_record", {"object": "people", "record_id": "Ada Lovelace"}),
        (
            "create_note",
            {
                "parent_object": "people",
                "parent_record_id": ada,
                "title": "Private title",
                "content": "Private content",
            },
        ),
        ("list_tasks", {"linked_record_id": ada}),
    )

    rows = list(ToolCall.objects.order_by("pk"))
    assert [(r.tool, r.ok, r.attio_status, r.error_code) for r in rows] == [
        ("get_record", True, 200, ""),
        ("get_record", False, 404, "not_found"),
        ("get_record", False, None, "tool_error"),
        ("create_note", True, 200, ""),
        ("list_tasks", False, None, "invalid_arguments"),
    ]
    for row in rows:
        assert (row.owner_id, row.api_key_id, row.connection_id) == (
            key.owner_id,
            key.pk,
            key.connection_id,
        )
        stored = str(model_to_dict(row))
        for argument in (ada, MISSING, "Ada Lovelace", "Private title", "Private content"):
            assert argument not in stored


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit
def test_a_row_the_database_refuses_does_not_hold_back_the_others(alice_key, caplog):
    key, _ = alice_key
    trail = AuditTrail()
    fields = {
        "owner_id": key.owner_id,
        "api_key_id": key.pk,
        "connection_id": key.connection_id,
        "ok": True,
        "attio_status": 200,
        "error_code": "",
        "duration_ms": 5,
    }
    trail.add(tool="first", **fields)
    trail.add(tool="nul\x00byte", **fields)  # PostgreSQL's text columns refuse NUL
    trail.add(tool="orphan", **{**fields, "api_key_id": key.pk + 1000})  # a key deleted since
    trail.add(tool="last", **fields)

    async_to_sync(trail.flush)()

    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.api_key_id, r.owner_id) for r in rows] == [
        ("first", key.pk, key.owner_id),
        ("orphan", None, key.owner_id),
        ("last", key.pk, key.owner_id),
    ]
    assert trail.pending == []  # nothing left to fail again at the next flush
    assert "Dropped a tool call record" in caplog.text


@pytest.mark.postgres
def test_a_failure_while_writing_rows_one_by_one_never_writes_a_row_twice(alice_key, monkeypatch):
    key, _ = alice_key
    trail = AuditTrail()
    for tool in ("first", "nul\x00byte", "second", "third"):
        trail.add(owner_id=key.owner_id, tool=tool, ok=True, duration_ms=1)
    insert = AuditTrail.insert
    failed = []

    def insert_losing_the_database_once(row):
        if row.tool == "second" and not failed:
            failed.append(row.tool)
            raise OperationalError("the database went away")
        insert(row)

    monkeypatch.setattr(AuditTrail, "insert", staticmethod(insert_losing_the_database_once))
    with pytest.raises(OperationalError):
        async_to_sync(trail.flush)()
    assert [row.tool for row in trail.pending] == ["second", "third"]
    async_to_sync(trail.flush)()
    assert list(ToolCall.objects.order_by("pk").values_list("tool", flat=True)) == [
        "first",
        "second",
        "third",
    ]

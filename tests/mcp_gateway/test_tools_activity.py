"""Note, task, list, workspace member and comment tools over MCP, against the fake Attio."""

import pytest

from mcp_gateway.models import ToolCall
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def ada(acme):
    return acme.record_id("people", "Ada Lovelace")


def refused_before_attio(result, fake_attio, complaint: str) -> None:
    assert result.is_error
    assert complaint in tool_text(result)
    assert fake_attio.calls == []


# --- notes ------------------------------------------------------------------------------------


def test_list_notes_on_a_record(call_tool, key, fake_attio, ada):
    data = ok(call_tool(key, "list_notes", {"object": "people", "record_id": ada}))

    [note] = data["notes"]
    assert note["title"] == "Intro call"
    assert note["content_plaintext"] == "Ada wants a demo next week.\nBudget approved."
    assert note["content_markdown"] is None
    assert note["content_truncated"] is False
    assert data["next_offset"] is None
    assert fake_attio.last("notes.list").query == {
        "parent_object": "people",
        "parent_record_id": ada,
        "limit": "10",
        "offset": "0",
    }


def test_list_notes_cuts_long_notes_and_get_note_gives_them_whole(run_tools, key, ada):
    body = "word " * 400
    created, listed = run_tools(
        key,
        (
            "create_note",
            {"parent_object": "people", "parent_record_id": ada, "title": "Long", "content": body},
        ),
        ("list_notes", {"object": "people", "record_id": ada, "limit": 1, "offset": 1}),
    )
    note_id = ok(created)["note_id"]

    [note] = ok(listed)["notes"]
    assert note["note_id"] == note_id
    assert note["content_truncated"] is True
    assert note["content_plaintext"] == (
        f"{body[:1000]}… [cut at 1,000 of 2,000 characters: get_note with note_id "
        f"{note_id} gives all]"
    )
    assert ok(listed)["next_offset"] == 2


def test_get_note_gives_plaintext_and_markdown(call_tool, key, fake_attio, acme):
    [note_id] = acme.notes
    data = ok(call_tool(key, "get_note", {"note_id": note_id}))

    assert data["content_markdown"] == "Ada wants a **demo** next week.\n\n- Budget approved."
    assert data["content_plaintext"].startswith("Ada wants a demo")
    assert data["created_by"] == {"type": "workspace-member", "id": acme_member(fake_attio)}
    assert fake_attio.last("notes.get").path == f"/v2/notes/{note_id}"


def acme_member(fake_attio) -> str:
    return fake_attio.workspace("acme").member_id


def test_create_note_in_markdown(call_tool, key, fake_attio, acme, ada):
    arguments = {
        "parent_object": "people",
        "parent_record_id": ada,
        "title": "Call notes",
        "content": "# Next steps\n- send **pricing**",
        "format": "markdown",
    }
    data = ok(call_tool(key, "create_note", arguments))

    assert fake_attio.last("notes.create").json == {
        "data": {
            "parent_object": "people",
            "parent_record_id": ada,
            "title": "Call notes",
            "format": "markdown",
            "content": "# Next steps\n- send **pricing**",
        }
    }
    assert data["note_id"] in acme.notes
    assert data["content_markdown"] == "# Next steps\n- send **pricing**"


def test_create_note_on_a_missing_record(call_tool, key):
    arguments = {
        "parent_object": "people",
        "parent_record_id": MISSING,
        "title": "x",
        "content": "y",
    }
    result = call_tool(key, "create_note", arguments)

    assert result.is_error
    assert f'Record with ID "{MISSING}" was not found.' in tool_text(result)


def test_create_note_takes_the_names_notes_come_back_with(mcp, key):
    async def body(client):
        return {t.name: t for t in (await client.list_tools()).tools}["create_note"]

    schema = mcp(key, body).input_schema
    assert list(schema["properties"]) == [
        "parent_object",
        "parent_record_id",
        "title",
        "content",
        "format",
    ]
    assert schema["required"] == ["parent_object", "parent_record_id", "title", "content"]


def test_create_note_still_takes_object_and_record_id(run_tools, key, fake_attio, acme, ada):
    # The names before parent_object and parent_record_id, for clients set up with them.
    old, new = run_tools(
        key,
        ("create_note", {"object": "people", "record_id": ada, "title": "Old", "content": "c"}),
        (
            "create_note",
            {"parent_object": "people", "parent_record_id": ada, "title": "New", "content": "c"},
        ),
    )

    for result in (old, new):
        note = ok(result)
        assert (note["parent_object"], note["parent_record_id"]) == ("people", ada)
        assert acme.notes[note["note_id"]].parent_record_id == ada
    sent = [c.json["data"] for c in fake_attio.calls_to("notes.create")]
    assert [(d["parent_object"], d["parent_record_id"], d["title"]) for d in sent] == [
        ("people", ada, "Old"),
        ("people", ada, "New"),
    ]


def test_delete_note(call_tool, key, fake_attio, acme):
    [note_id] = acme.notes
    data = ok(call_tool(key, "delete_note", {"note_id": note_id}))

    assert data == {"deleted": True, "kind": "note", "id": note_id}
    assert acme.notes == {}


# --- tasks ------------------------------------------------------------------------------------


def test_list_tasks_with_every_filter(call_tool, key, fake_attio, ada):
    arguments = {
        "linked_object": "people",
        "linked_record_id": ada,
        "assignee": "bob@acme.test",
        "is_completed": False,
        "newest_first": True,
        "limit": 5,
    }
    data = ok(call_tool(key, "list_tasks", arguments))

    [task] = data["tasks"]
    assert task["content"] == "Follow up with Ada"
    assert task["linked_records"][0]["target_record_id"] == ada
    assert fake_attio.last("tasks.list").query == {
        "limit": "5",
        "offset": "0",
        "sort": "created_at:desc",
        "linked_object": "people",
        "linked_record_id": ada,
        "assignee": "bob@acme.test",
        "is_completed": "false",
    }


def test_list_tasks_needs_object_and_record_together(call_tool, key, fake_attio, ada):
    result = call_tool(key, "list_tasks", {"linked_record_id": ada})

    refused_before_attio(result, fake_attio, "Give `linked_object` and `linked_record_id`")
    assert ToolCall.objects.get().error_code == "invalid_arguments"


def test_create_task(call_tool, key, fake_attio, acme, ada):
    bob = acme.member("bob").id
    arguments = {
        "content": "Send the contract",
        "deadline_at": "2025-06-30T19:00:00+02:00",
        "assignees": ["alice@acme.test", bob],
        "linked_records": [{"object": "people", "record_id": ada}],
    }
    data = ok(call_tool(key, "create_task", arguments))

    assert fake_attio.last("tasks.create").json == {
        "data": {
            "content": "Send the contract",
            "format": "plaintext",
            "deadline_at": "2025-06-30T17:00:00Z",
            "is_completed": False,
            "linked_records": [{"target_object": "people", "target_record_id": ada}],
            "assignees": [
                {"workspace_member_email_address": "alice@acme.test"},
                {"referenced_actor_type": "workspace-member", "referenced_actor_id": bob},
            ],
        }
    }
    assert data["assignee_ids"] == [acme_member(fake_attio), bob]
    assert data["deadline_at"].startswith("2025-06-30T17:00:00")
    assert data["task_id"] in acme.tasks


def test_create_task_with_a_date_only_deadline_and_no_links(call_tool, key, fake_attio):
    data = ok(call_tool(key, "create_task", {"content": "Plan Q3", "deadline_at": "2025-07-01"}))

    sent = fake_attio.last("tasks.create").json["data"]
    assert sent["deadline_at"] == "2025-07-01T00:00:00Z"
    assert (sent["assignees"], sent["linked_records"]) == ([], [])
    assert data["assignee_ids"] == []


def test_create_task_for_an_unknown_member(call_tool, key):
    arguments = {"content": "x", "assignees": ["nobody@acme.test"]}
    result = call_tool(key, "create_task", arguments)

    assert result.is_error
    assert "nobody@acme.test" in tool_text(result)
    assert "HTTP 404" in tool_text(result)


def test_update_task_completes_it_and_clears_the_deadline(call_tool, key, fake_attio, acme):
    [task_id] = acme.tasks
    arguments = {"task_id": task_id, "is_completed": True, "clear_deadline": True}
    data = ok(call_tool(key, "update_task", arguments))

    call = fake_attio.last("tasks.update")
    assert (call.method, call.path) == ("PATCH", f"/v2/tasks/{task_id}")
    assert call.json == {"data": {"is_completed": True, "deadline_at": None}}
    assert data["is_completed"] is True
    assert data["deadline_at"] is None


def test_update_task_replaces_assignees(call_tool, key, fake_attio, acme):
    [task_id] = acme.tasks
    data = ok(call_tool(key, "update_task", {"task_id": task_id, "assignees": []}))

    assert fake_attio.last("tasks.update").json == {"data": {"assignees": []}}
    assert data["assignee_ids"] == []


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({}, "Nothing to change"),
        ({"deadline_at": "2025-01-01", "clear_deadline": True}, "not both"),
    ],
)
def test_update_task_refuses_unclear_changes(
    call_tool, key, fake_attio, acme, arguments, complaint
):
    [task_id] = acme.tasks
    result = call_tool(key, "update_task", {"task_id": task_id, **arguments})

    refused_before_attio(result, fake_attio, complaint)


def test_delete_task(call_tool, key, acme):
    [task_id] = acme.tasks
    assert ok(call_tool(key, "delete_task", {"task_id": task_id}))["deleted"] is True
    assert acme.tasks == {}


BAD_ARGUMENTS = [
    ("create_task", {"content": ""}, "content"),
    ("create_task", {"content": "x" * 2001}, "content"),
    ("create_task", {"content": "x", "assignees": ["bob"]}, "assignees"),
    ("create_task", {"content": "x", "deadline_at": "next tuesday"}, "deadline_at"),
    (
        "create_task",
        {"content": "x", "linked_records": [{"object": "people", "id": MISSING}]},
        "linked_records",
    ),
    ("list_tasks", {"limit": 501}, "limit"),
    ("update_task", {"task_id": "123", "is_completed": True}, "task_id"),
    (
        "create_note",
        {"parent_object": "people", "parent_record_id": MISSING, "title": "t"},
        "content",
    ),
    ("create_note", {"parent_object": "people", "title": "t", "content": "c"}, "parent_record_id"),
    (
        "create_note",
        {
            "parent_object": "people",
            "parent_record_id": MISSING,
            "title": "t",
            "content": "c",
            "format": "html",
        },
        "format",
    ),
    ("list_notes", {"object": "people", "record_id": MISSING, "limit": 51}, "limit"),
    ("get_note", {"note_id": "../tasks"}, "note_id"),
    ("query_list_entries", {"list": "sales pipeline"}, "list"),
    ("add_to_list", {"list": "sales_pipeline", "object": "companies"}, "record_id"),
    (
        "update_list_entry",
        {"list": "sales_pipeline", "entry_id": MISSING, "entry_values": {}},
        "entry_values",
    ),
    ("get_workspace_member", {"workspace_member_id": "alice@acme.test"}, "workspace_member"),
    ("list_threads", {"object": "people", "record_id": MISSING, "limit": 51}, "limit"),
    ("create_comment", {"content": "", "thread_id": MISSING}, "content"),
]


def test_bad_arguments_are_refused_before_attio(run_tools, key, fake_attio):
    results = run_tools(key, *[(name, arguments) for name, arguments, _ in BAD_ARGUMENTS])

    for (name, arguments, complaint), result in zip(BAD_ARGUMENTS, results, strict=True):
        text = tool_text(result)
        assert result.is_error, (name, arguments)
        assert f"Error executing tool {name}" in text, (name, arguments)
        assert complaint in text, (name, arguments, text)
        assert "pydantic" not in text, (name, arguments, text)
    assert fake_attio.calls == []


# --- lists ------------------------------------------------------------------------------------


def test_list_lists(call_tool, key, fake_attio, acme):
    data = ok(call_tool(key, "list_lists"))

    [pipeline] = data["lists"]
    assert pipeline == {
        "list_id": acme.lists["sales_pipeline"].id,
        "api_slug": "sales_pipeline",
        "name": "Sales pipeline",
        "parent_object": ["companies"],
        "workspace_access": "full-access",
        "created_at": acme.lists["sales_pipeline"].created_at,
    }


def test_get_list(call_tool, key, fake_attio):
    data = ok(call_tool(key, "get_list", {"list": "sales_pipeline"}))

    assert data["name"] == "Sales pipeline"
    assert fake_attio.last("lists.get").path == "/v2/lists/sales_pipeline"


def test_get_an_unknown_list(call_tool, key):
    result = call_tool(key, "get_list", {"list": "pipeline"})

    assert result.is_error
    text = tool_text(result)
    assert 'List with slug/ID "pipeline" was not found.' in text
    assert "list_lists" in text


def test_query_list_entries(call_tool, key, fake_attio, acme):
    arguments = {
        "list": "sales_pipeline",
        "filter": {"stage": "Qualified"},
        "sorts": [{"direction": "asc", "attribute": "priority"}],
        "limit": 10,
    }
    data = ok(call_tool(key, "query_list_entries", arguments))

    [found] = data["entries"]
    assert found["parent_record_id"] == acme.record_id("companies", "Acme Corp")
    assert found["parent_object"] == "companies"
    assert found["entry_values"] == {"stage": "Qualified", "priority": "High"}
    assert fake_attio.last("entries.query").json == {
        "filter": {"stage": "Qualified"},
        "sorts": [{"direction": "asc", "attribute": "priority"}],
        "limit": 10,
        "offset": 0,
    }


def test_add_to_list(call_tool, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    arguments = {
        "list": "sales_pipeline",
        "object": "companies",
        "record_id": hooli,
        "entry_values": {"stage": "Prospecting", "priority": ["Low"]},
    }
    data = ok(call_tool(key, "add_to_list", arguments))

    assert fake_attio.last("entries.create").json == {
        "data": {
            "parent_object": "companies",
            "parent_record_id": hooli,
            "entry_values": {"stage": ["Prospecting"], "priority": ["Low"]},
        }
    }
    assert acme.entries[data["entry_id"]].parent_record_id == hooli
    assert data["entry_values"]["stage"] == "Prospecting"


def test_add_to_list_without_values(call_tool, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"list": "sales_pipeline", "object": "companies", "record_id": hooli}
    ok(call_tool(key, "add_to_list", arguments))

    assert fake_attio.last("entries.create").json["data"]["entry_values"] == {}


def test_add_a_record_of_the_wrong_object_to_a_list(call_tool, key, ada):
    arguments = {"list": "sales_pipeline", "object": "people", "record_id": ada}
    result = call_tool(key, "add_to_list", arguments)

    assert result.is_error
    assert 'holds records of companies, not of "people"' in tool_text(result)


def pipeline_entry(acme, company: str) -> str:
    record_id = acme.record_id("companies", company)
    return next(e.id for e in acme.entries.values() if e.parent_record_id == record_id)


def test_update_list_entry(call_tool, key, fake_attio, acme):
    entry_id = pipeline_entry(acme, "Initech")
    arguments = {
        "list": "sales_pipeline",
        "entry_id": entry_id,
        "entry_values": {"stage": "Proposal"},
    }
    data = ok(call_tool(key, "update_list_entry", arguments))

    call = fake_attio.last("entries.update")
    assert (call.method, call.path) == ("PATCH", f"/v2/lists/sales_pipeline/entries/{entry_id}")
    assert call.json == {"data": {"entry_values": {"stage": ["Proposal"]}}}
    assert data["entry_values"] == {"stage": "Proposal", "priority": "Medium"}


def test_update_list_entry_overwriting(call_tool, key, fake_attio, acme):
    entry_id = pipeline_entry(acme, "Initech")
    arguments = {
        "list": "sales_pipeline",
        "entry_id": entry_id,
        "entry_values": {"priority": "High"},
        "overwrite_multiselect": True,
    }
    ok(call_tool(key, "update_list_entry", arguments))

    assert fake_attio.last("entries.overwrite").method == "PUT"


def test_remove_from_list(mcp, key, fake_attio, acme):
    entry_id = pipeline_entry(acme, "Acme Corp")
    arguments = {"list": "sales_pipeline", "entry_id": entry_id}

    async def preview_then_confirm(client):
        preview = ok(await client.call_tool("remove_from_list", arguments))
        confirm = preview["preview"]["fingerprint"]
        return ok(await client.call_tool("remove_from_list", {**arguments, "confirm": confirm}))

    data = mcp(key, preview_then_confirm)

    assert data == {"deleted": True, "kind": "list entry", "id": entry_id, "preview": None}
    assert entry_id not in acme.entries
    assert acme.record_id("companies", "Acme Corp") in acme.records


# --- workspace members ----------------------------------------------------------------------


def test_list_workspace_members(call_tool, key, fake_attio, acme):
    data = ok(call_tool(key, "list_workspace_members"))

    assert [(m["first_name"], m["email_address"], m["access_level"]) for m in data["members"]] == [
        ("Alice", "alice@acme.test", "admin"),
        ("Bob", "bob@acme.test", "member"),
    ]
    assert data["members"][1]["workspace_member_id"] == acme.member("bob").id


def test_get_workspace_member(call_tool, key, fake_attio, acme):
    bob = acme.member("bob").id
    data = ok(call_tool(key, "get_workspace_member", {"workspace_member_id": bob}))

    assert (data["first_name"], data["last_name"]) == ("Bob", "Baker")
    assert fake_attio.last("members.get").path == f"/v2/workspace_members/{bob}"


# --- threads and comments ---------------------------------------------------------------------


def test_list_threads_on_a_record(call_tool, key, fake_attio, acme):
    acme_corp = acme.record_id("companies", "Acme Corp")
    data = ok(call_tool(key, "list_threads", {"object": "companies", "record_id": acme_corp}))

    [thread] = data["threads"]
    [comment] = thread["comments"]
    assert comment["content"] == "Acme is ready to expand, let's prepare a proposal."
    assert comment["author"] == {"type": "workspace-member", "id": acme_member(fake_attio)}
    assert fake_attio.last("threads.list").query == {
        "object": "companies",
        "record_id": acme_corp,
        "limit": "10",
        "offset": "0",
    }


def test_list_threads_on_a_list_entry(call_tool, key, fake_attio, acme):
    entry_id = pipeline_entry(acme, "Acme Corp")
    data = ok(call_tool(key, "list_threads", {"list": "sales_pipeline", "entry_id": entry_id}))

    assert data["threads"] == []
    assert fake_attio.last("threads.list").query == {
        "list": "sales_pipeline",
        "entry_id": entry_id,
        "limit": "10",
        "offset": "0",
    }


def test_list_threads_needs_one_whole_target(run_tools, key, fake_attio):
    targets = [
        {},
        {"object": "companies"},
        {"record_id": MISSING},
        {"list": "sales_pipeline"},
        {"object": "companies", "record_id": MISSING, "list": "sales_pipeline"},
    ]
    results = run_tools(key, *[("list_threads", arguments) for arguments in targets])

    for arguments, result in zip(targets, results, strict=True):
        assert result.is_error, arguments
        text = tool_text(result)
        assert "Give both" in text or "Name one place" in text, arguments
    assert fake_attio.calls == []


def test_comment_on_a_record_is_signed_by_the_connected_member(
    call_tool, key, fake_attio, acme, ada
):
    arguments = {"content": "Met her today", "object": "people", "record_id": ada}
    data = ok(call_tool(key, "create_comment", arguments))

    assert fake_attio.last("comments.create").json == {
        "data": {
            "format": "plaintext",
            "content": "Met her today",
            "author": {"type": "workspace-member", "id": acme_member(fake_attio)},
            "record": {"object": "people", "record_id": ada},
        }
    }
    assert acme.threads[data["thread_id"]].record_id == ada
    # The connection did not record its member, so Attio was asked who it is.
    assert fake_attio.count("self") == 1


def test_reply_in_a_thread_uses_the_stored_member(call_tool, key, alice_key, fake_attio, acme):
    connection = alice_key[0].connection
    connection.attio_member_id = acme.member("bob").id
    connection.save()
    [thread_id] = acme.threads
    data = ok(call_tool(key, "create_comment", {"content": "Agreed", "thread_id": thread_id}))

    sent = fake_attio.last("comments.create").json["data"]
    assert sent["thread_id"] == thread_id
    assert sent["author"]["id"] == acme.member("bob").id
    assert fake_attio.count("self") == 0
    assert len(acme.threads[thread_id].comment_ids) == 2
    assert data["thread_id"] == thread_id


def test_comment_on_a_list_entry(call_tool, key, fake_attio, acme):
    entry_id = pipeline_entry(acme, "Initech")
    arguments = {"content": "Chasing", "list": "sales_pipeline", "entry_id": entry_id}
    ok(call_tool(key, "create_comment", arguments))

    sent = fake_attio.last("comments.create").json["data"]
    assert sent["entry"] == {"list": "sales_pipeline", "entry_id": entry_id}


def test_comment_needs_exactly_one_place(run_tools, key, fake_attio):
    places = [
        {},
        {"thread_id": MISSING, "object": "people", "record_id": MISSING},
        {"object": "people"},
        {"list": "sales_pipeline", "entry_id": MISSING, "record_id": MISSING},
    ]
    calls = [("create_comment", {"content": "x", **arguments}) for arguments in places]
    results = run_tools(key, *calls)

    assert all(r.is_error for r in results)
    assert fake_attio.calls == []
    assert {r.error_code for r in ToolCall.objects.all()} == {"invalid_arguments"}


def test_reply_in_a_missing_thread(call_tool, key, fake_attio):
    result = call_tool(key, "create_comment", {"content": "x", "thread_id": MISSING})

    assert result.is_error
    assert "The referenced Thread could not be found" in tool_text(result)
    assert fake_attio.count("comments.create") == 1

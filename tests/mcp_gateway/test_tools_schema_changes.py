"""Schema-change tools (objects, attributes, options and statuses, lists), value history
and the single-comment tools over MCP, against the fake Attio: what they return, what
Attio receives, and how they answer mistakes."""

import uuid

import pytest
from mcp.types import ToolAnnotations

from mcp_gateway.models import ToolCall
from mcp_gateway.tools import _call
from tests.fake_attio.model import Comment
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"
PEOPLE_SLUGS = "company, created_by, email_addresses, job_title, name, phone_numbers"
WRITE_TOOLS = {
    "create_object",
    "update_object",
    "create_attribute",
    "update_attribute",
    "create_option",
    "update_option",
    "create_list",
    "update_list",
    "delete_comment",
}
READ_TOOLS = {"get_value_history", "get_thread", "get_comment"}


@pytest.fixture(autouse=True)
def configuration_scopes(fake_attio):
    """Tokens the fake issues may change the workspace's configuration."""
    fake_attio.scopes += " object_configuration:read-write list_configuration:read-write"


def refused(result, *phrases: str) -> str:
    assert result.is_error
    text = tool_text(result)
    for phrase in phrases:
        assert phrase in text, text
    return text


def test_annotations_of_the_new_tools(mcp, key):
    async def body(client):
        return (await client.list_tools()).tools

    listed = {t.name: t for t in mcp(key, body)}
    for name in WRITE_TOOLS | READ_TOOLS:
        # tools/list leaves out hints equal to MCP's defaults (tools.lean_annotations).
        hints = listed[name].annotations or ToolAnnotations()
        read_only = bool(hints.read_only_hint)
        assert read_only is (name in READ_TOOLS), name
        if not read_only:
            destructive = hints.destructive_hint is not False
            assert destructive is name.startswith(("update_", "delete_")), name
        assert len(listed[name].description.split()) >= 8, name


# --- objects ---------------------------------------------------------------------------


def test_create_object(call_tool, key, fake_attio, acme):
    arguments = {"api_slug": "projects", "singular_noun": "Project", "plural_noun": "Projects"}
    data = ok(call_tool(key, "create_object", arguments))

    assert data["api_slug"] == "projects"
    assert data["object_id"] == acme.objects["projects"].id
    assert fake_attio.last("objects.create").json == {"data": arguments}


def test_create_object_with_a_taken_slug(call_tool, key):
    arguments = {"api_slug": "people", "singular_noun": "Person", "plural_noun": "People"}
    refused(call_tool(key, "create_object", arguments), "HTTP 409", "code: slug_conflict")


def test_update_object_renames_it(call_tool, key, fake_attio, acme):
    data = ok(call_tool(key, "update_object", {"object": "deals", "api_slug": "opportunities"}))

    assert data["api_slug"] == "opportunities"
    assert "opportunities" in acme.objects
    call = fake_attio.last("objects.update")
    assert (call.method, call.path, call.json) == (
        "PATCH",
        "/v2/objects/deals",
        {"data": {"api_slug": "opportunities"}},
    )


def test_update_object_mistakes(run_tools, key, fake_attio):
    nothing, unknown, taken = run_tools(
        key,
        ("update_object", {"object": "deals"}),
        ("update_object", {"object": "spaceships", "plural_noun": "Ships"}),
        ("update_object", {"object": "deals", "api_slug": "people"}),
    )

    refused(nothing, "Nothing to change")
    refused(unknown, "HTTP 404", "list_objects")
    refused(taken, "HTTP 409")
    assert [c.endpoint for c in fake_attio.calls] == ["objects.update", "objects.update"]


# --- attributes --------------------------------------------------------------------------


def test_create_a_select_attribute_and_its_option(run_tools, key, fake_attio, acme):
    attribute = {
        "target": "objects",
        "identifier": "companies",
        "title": "Tier",
        "api_slug": "tier",
        "type": "select",
    }
    option = {
        "target": "objects",
        "identifier": "companies",
        "attribute": "tier",
        "kind": "select",
        "title": "Gold",
    }
    created, gold = run_tools(key, ("create_attribute", attribute), ("create_option", option))

    assert ok(created)["type"] == "select"
    assert fake_attio.last("attributes.create").json == {
        "data": {
            "title": "Tier",
            "description": None,
            "api_slug": "tier",
            "type": "select",
            "is_required": False,
            "is_unique": False,
            "is_multiselect": False,
            "config": {},
        }
    }
    tier = acme.objects["companies"].attributes["tier"]
    assert ok(gold) == {
        "id": tier.option("Gold").id,
        "title": "Gold",
        "is_archived": False,
        "celebration_enabled": None,
        "target_time_in_status": None,
    }
    assert fake_attio.last("options.create").json == {"data": {"title": "Gold"}}


def test_create_attribute_config_for_references_and_currencies(run_tools, key, fake_attio, acme):
    reference = {
        "target": "objects",
        "identifier": "people",
        "title": "Partner",
        "api_slug": "partner",
        "type": "record-reference",
        "is_multiselect": True,
        "allowed_objects": ["companies"],
    }
    currency = {
        "target": "lists",
        "identifier": "sales_pipeline",
        "title": "Budget",
        "api_slug": "budget",
        "type": "currency",
        "default_currency": "EUR",
        "currency_display": "code",
    }
    partner, budget = run_tools(
        key, ("create_attribute", reference), ("create_attribute", currency)
    )

    assert ok(partner)["allowed_object_ids"] == [acme.objects["companies"].id]
    assert ok(partner)["is_multiselect"] is True
    sent = [c.json["data"]["config"] for c in fake_attio.calls_to("attributes.create")]
    assert sent == [
        {"record_reference": {"allowed_objects": ["companies"]}},
        {"currency": {"default_currency_code": "EUR", "display_type": "code"}},
    ]
    assert ok(budget)["type"] == "currency"
    assert acme.lists["sales_pipeline"].attributes["budget"].default_currency_code == "EUR"


def test_create_attribute_mistakes(run_tools, key, fake_attio):
    base = {"target": "objects", "identifier": "people", "title": "X", "api_slug": "x"}
    results = run_tools(
        key,
        ("create_attribute", {**base, "type": "text", "allowed_objects": ["companies"]}),
        ("create_attribute", {**base, "type": "currency", "default_currency": "XYZ"}),
        ("create_attribute", {**base, "type": "currency", "currency_display": "code"}),
        ("create_attribute", {**base, "type": "colour"}),
        ("create_attribute", {**base, "type": "text", "is_required": "sometimes"}),
    )

    refused(results[0], "`allowed_objects` only apply to record-reference")
    refused(results[1], "does not take XYZ", "EUR", "USD")
    refused(results[2], "Give `default_currency` with `currency_display`")
    refused(results[3], "type:")
    refused(results[4], "is_required: must be true or false")
    assert fake_attio.calls == []


def test_create_attribute_conflict_and_unknown_parent(run_tools, key):
    taken, unknown = run_tools(
        key,
        (
            "create_attribute",
            {
                "target": "objects",
                "identifier": "people",
                "title": "Name",
                "api_slug": "name",
                "type": "text",
            },
        ),
        (
            "create_attribute",
            {
                "target": "lists",
                "identifier": "nowhere",
                "title": "X",
                "api_slug": "x",
                "type": "text",
            },
        ),
    )

    refused(taken, "HTTP 409", "slug_conflict")
    refused(unknown, "HTTP 404")


def test_update_attribute(run_tools, key, fake_attio, acme):
    job_title = {"target": "objects", "identifier": "people", "attribute": "job_title"}
    described, archived = run_tools(
        key,
        ("update_attribute", {**job_title, "description": "What they do"}),
        ("update_attribute", {**job_title, "title": "Role", "description": "", "archived": True}),
    )

    assert ok(described)["description"] == "What they do"
    assert ok(archived)["title"] == "Role"
    assert acme.objects["people"].attributes["job_title"].is_archived is True
    calls = fake_attio.calls_to("attributes.update")
    assert {c.path for c in calls} == {"/v2/objects/people/attributes/job_title"}
    assert [c.json for c in calls] == [
        {"data": {"description": "What they do"}},
        {"data": {"title": "Role", "description": None, "is_archived": True}},
    ]


def test_update_attribute_unknown_slug_lists_the_valid_ones(run_tools, key, fake_attio):
    unknown, system, nothing = run_tools(
        key,
        (
            "update_attribute",
            {"target": "objects", "identifier": "people", "attribute": "jobtitle", "title": "X"},
        ),
        (
            "update_attribute",
            {
                "target": "objects",
                "identifier": "people",
                "attribute": "created_by",
                "is_unique": True,
            },
        ),
        ("update_attribute", {"target": "objects", "identifier": "people", "attribute": "name"}),
    )

    refused(unknown, "HTTP 404", f"The object `people` has these attribute slugs: {PEOPLE_SLUGS}.")
    refused(system, "HTTP 400", "system_edit_unauthorized")
    refused(nothing, "Nothing to change")
    # The system attribute exists, so its refusal is not followed by a slug look-up.
    assert [c.endpoint for c in fake_attio.calls] == [
        "attributes.update",
        "attributes.list",
        "attributes.update",
    ]


def test_a_schema_change_clears_the_cached_slugs(run_tools, key, fake_attio):
    bad = {"object": "people", "values": {"tierr": "Gold"}}
    attribute = {
        "target": "objects",
        "identifier": "people",
        "title": "Tier",
        "api_slug": "tier",
        "type": "text",
    }
    before, created, after = run_tools(
        key, ("create_record", bad), ("create_attribute", attribute), ("create_record", bad)
    )

    assert ", tier" not in tool_text(before)
    ok(created)
    assert "phone_numbers, tier." in tool_text(after)
    assert fake_attio.count("attributes.list") == 2


def test_a_failed_schema_change_clears_the_cached_slugs_too(call_tool, key, alice_connection):
    _call.remember_slugs(alice_connection.pk, "objects", "people", ["stale"])
    arguments = {"object": "spaceships", "plural_noun": "Ships"}

    refused(call_tool(key, "update_object", arguments), "HTTP 404")
    assert alice_connection.pk not in _call.ATTRIBUTE_SLUGS


# --- select options and statuses -----------------------------------------------------------

PIPELINE = {"target": "lists", "identifier": "sales_pipeline"}


def test_create_a_status_with_its_celebration_and_target_time(call_tool, key, fake_attio):
    arguments = {
        **PIPELINE,
        "attribute": "stage",
        "kind": "status",
        "title": "On hold",
        "celebration": True,
        "target_time": "P7D",
    }
    data = ok(call_tool(key, "create_option", arguments))

    assert (data["title"], data["celebration_enabled"], data["target_time_in_status"]) == (
        "On hold",
        True,
        "P7D",
    )
    assert fake_attio.last("statuses.create").json == {
        "data": {"title": "On hold", "celebration_enabled": True, "target_time_in_status": "P7D"}
    }


def test_create_option_mistakes(run_tools, key, fake_attio):
    option = {**PIPELINE, "attribute": "priority", "kind": "select"}
    results = run_tools(
        key,
        ("create_option", {**option, "title": "Urgent", "celebration": True}),
        ("create_option", {**option, "title": "Urgent", "target_time": "next week"}),
        ("create_option", {**option, "title": "Low"}),
        ("create_option", {**option, "attribute": "priorty", "title": "Urgent"}),
    )

    refused(results[0], "`celebration` only apply to status")
    refused(results[1], "target_time")
    refused(results[2], "HTTP 409", "slug_conflict")
    refused(results[3], "The list `sales_pipeline` has these attribute slugs: priority, stage.")
    assert [c.endpoint for c in fake_attio.calls] == [
        "options.create",
        "options.create",
        "attributes.list",
    ]


def test_update_option_by_title_sends_its_uuid(call_tool, key, fake_attio, acme):
    arguments = {
        **PIPELINE,
        "attribute": "priority",
        "kind": "select",
        "option": "low",
        "archived": True,
    }
    data = ok(call_tool(key, "update_option", arguments))

    low = acme.lists["sales_pipeline"].attributes["priority"].option("Low")
    assert (data["id"], data["is_archived"]) == (low.id, True)
    assert fake_attio.last("options.list").query == {"show_archived": "true"}
    call = fake_attio.last("options.update")
    assert call.path == f"/v2/lists/sales_pipeline/attributes/priority/options/{low.id}"
    assert call.json == {"data": {"is_archived": True}}


def test_update_a_status_by_uuid(call_tool, key, fake_attio, acme):
    qualified = acme.lists["sales_pipeline"].attributes["stage"].status("Qualified")
    arguments = {
        **PIPELINE,
        "attribute": "stage",
        "kind": "status",
        "option": qualified.id,
        "title": "Vetted",
        "target_time": "P2W",
    }
    data = ok(call_tool(key, "update_option", arguments))

    assert (data["title"], data["target_time_in_status"]) == ("Vetted", "P2W")
    assert fake_attio.count("statuses.list") == 0
    assert fake_attio.last("statuses.update").path.endswith(f"/statuses/{qualified.id}")


def test_update_option_with_an_unknown_title_lists_the_titles(run_tools, key, fake_attio):
    option = {**PIPELINE, "attribute": "priority", "kind": "select", "title": "X"}
    unknown, hostile, taken = run_tools(
        key,
        ("update_option", {**option, "option": "Lowest"}),
        ("update_option", {**option, "option": "../Low"}),
        ("update_option", {**option, "option": "Low", "title": "High"}),
    )

    refused(unknown, "`priority` has no option titled “Lowest”", "titles: Low, Medium, High.")
    # A title can hold any character, so it is looked up, never put into the path.
    refused(hostile, "no option titled “../Low”")
    refused(taken, "HTTP 409")
    assert fake_attio.count("options.update") == 1
    assert all(".." not in c.path for c in fake_attio.calls)


# --- lists -------------------------------------------------------------------------------


def test_create_list(call_tool, key, fake_attio, acme):
    alice = acme.member("alice").id
    arguments = {
        "name": "Hiring",
        "api_slug": "hiring",
        "parent_object": "people",
        "workspace_access": "read-only",
        "members": [{"workspace_member_id": alice, "level": "full-access"}],
    }
    data = ok(call_tool(key, "create_list", arguments))

    assert (data["api_slug"], data["parent_object"], data["workspace_access"]) == (
        "hiring",
        ["people"],
        "read-only",
    )
    assert fake_attio.last("lists.create").json == {
        "data": {
            "name": "Hiring",
            "api_slug": "hiring",
            "parent_object": "people",
            "workspace_access": "read-only",
            "workspace_member_access": [{"workspace_member_id": alice, "level": "full-access"}],
        }
    }
    assert acme.lists["hiring"].id == data["list_id"]


def test_create_list_mistakes(run_tools, key, fake_attio):
    base = {"name": "Hiring", "api_slug": "hiring", "parent_object": "people"}
    results = run_tools(
        key,
        ("create_list", {**base, "api_slug": "sales_pipeline"}),
        ("create_list", {**base, "parent_object": "spaceships"}),
        ("create_list", {**base, "workspace_access": "read-only"}),
        ("create_list", {**base, "workspace_access": None}),
        ("create_list", {**base, "members": [{"workspace_member_id": "bob", "level": "owner"}]}),
    )

    refused(results[0], "HTTP 409", "slug_conflict")
    refused(results[1], "HTTP 404")
    refused(results[2], "HTTP 400", "full-access")
    refused(results[3], "workspace_access")
    refused(results[4], "members[0].workspace_member_id: must be a UUID")
    assert fake_attio.count("lists.create") == 3


def test_update_list(call_tool, key, fake_attio, acme):
    arguments = {"list": "sales_pipeline", "name": "Deals board", "api_slug": "board"}
    data = ok(call_tool(key, "update_list", arguments))

    assert (data["name"], data["api_slug"]) == ("Deals board", "board")
    assert "board" in acme.lists
    call = fake_attio.last("lists.update")
    assert (call.path, call.json) == (
        "/v2/lists/sales_pipeline",
        {"data": {"name": "Deals board", "api_slug": "board"}},
    )


def test_update_list_mistakes(run_tools, key, fake_attio):
    nothing, unknown, parent = run_tools(
        key,
        ("update_list", {"list": "sales_pipeline"}),
        ("update_list", {"list": "nope", "name": "X"}),
        ("update_list", {"list": "sales_pipeline", "parent_object": "people"}),
    )

    refused(nothing, "Nothing to change")
    refused(unknown, "HTTP 404")
    # Attio's API cannot move a list to another object, so the tool has no such argument.
    refused(parent, "Nothing to change")
    assert [c.endpoint for c in fake_attio.calls] == ["lists.update"]


# --- value history -----------------------------------------------------------------------


def test_value_history_of_a_record_after_an_update(run_tools, key, fake_attio, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    where = {"object": "people", "record_id": ada, "attribute": "job_title"}
    fake_attio.advance(60)
    update = {"object": "people", "record_id": ada, "values": {"job_title": "Countess"}}
    _, history, current = run_tools(
        key,
        ("update_record", update),
        ("get_value_history", where),
        ("get_value_history", {**where, "show_historic": False}),
    )

    values = ok(history)["values"]
    assert [v["value"] for v in values] == ["Chief Analyst", "Countess"]
    assert values[0]["active_until"] == values[1]["active_from"]
    assert values[1]["active_until"] is None
    assert values[1]["actor"]["type"] == "api-token"
    assert [v["value"] for v in ok(current)["values"]] == ["Countess"]
    calls = fake_attio.calls_to("records.values")
    assert calls[0].path == f"/v2/objects/people/records/{ada}/attributes/job_title/values"
    assert [c.query for c in calls] == [
        {"show_historic": "true", "limit": "50", "offset": "0"},
        {"show_historic": "false", "limit": "50", "offset": "0"},
    ]


def test_value_history_of_a_list_entry(run_tools, key, fake_attio, acme):
    entry = acme.entries_of("sales_pipeline")[0]
    fake_attio.advance(60)
    update = {"list": "sales_pipeline", "entry_id": entry.id, "entry_values": {"stage": "Proposal"}}
    where = {"list": "sales_pipeline", "entry_id": entry.id, "attribute": "stage"}
    _, history = run_tools(key, ("update_list_entry", update), ("get_value_history", where))

    values = ok(history)["values"]
    assert values[-1]["value"] == "Proposal"
    assert len(values) == 2 and values[0]["active_until"] is not None
    assert fake_attio.last("entries.values").query["show_historic"] == "true"


def test_value_history_mistakes(run_tools, key, fake_attio, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    entry = acme.entries_of("sales_pipeline")[0]
    unknown, both, neither, missing = run_tools(
        key,
        ("get_value_history", {"object": "people", "record_id": ada, "attribute": "jobtitle"}),
        (
            "get_value_history",
            {
                "object": "people",
                "record_id": ada,
                "list": "sales_pipeline",
                "entry_id": entry.id,
                "attribute": "stage",
            },
        ),
        ("get_value_history", {"attribute": "name"}),
        ("get_value_history", {"object": "people", "record_id": MISSING, "attribute": "name"}),
    )

    refused(unknown, f"The object `people` has these attribute slugs: {PEOPLE_SLUGS}.")
    refused(both, "Name one place")
    refused(neither, "Name one place")
    missing_text = refused(missing, "HTTP 404")
    # The attribute exists: the 404 is the record's, so no slugs are offered.
    assert "has these attribute slugs" not in missing_text
    assert [c.endpoint for c in fake_attio.calls] == [
        "records.values",
        "attributes.list",
        "records.values",
    ]


# --- comments ----------------------------------------------------------------------------


def test_get_thread_and_comment(run_tools, key, acme):
    [thread] = acme.threads.values()
    comment_id = thread.comment_ids[0]
    got_thread, got_comment = run_tools(
        key,
        ("get_thread", {"thread_id": thread.id}),
        ("get_comment", {"comment_id": comment_id}),
    )

    assert ok(got_thread)["thread_id"] == thread.id
    assert [c["comment_id"] for c in ok(got_thread)["comments"]] == [comment_id]
    comment = ok(got_comment)
    assert (comment["comment_id"], comment["thread_id"]) == (comment_id, thread.id)
    assert comment["content"] == acme.comments[comment_id].content_plaintext


def test_delete_comment(run_tools, key, fake_attio, acme):
    [thread] = acme.threads.values()
    with fake_attio.lock:
        bob = acme.member("bob").id
        reply = Comment(str(uuid.uuid4()), thread.id, "Agreed.", bob, thread.created_at)
        acme.comments[reply.id] = reply
        thread.comment_ids.append(reply.id)
    deleted, again = run_tools(
        key,
        ("delete_comment", {"comment_id": reply.id}),
        ("delete_comment", {"comment_id": reply.id}),
    )

    assert ok(deleted) == {"deleted": True, "kind": "comment", "id": reply.id}
    assert reply.id not in acme.comments
    assert thread.id in acme.threads  # only the thread's first comment takes it along
    refused(again, "HTTP 404")
    assert fake_attio.last("comments.delete").path == f"/v2/comments/{reply.id}"


def test_unknown_thread_and_comment(run_tools, key):
    thread, comment = run_tools(
        key, ("get_thread", {"thread_id": MISSING}), ("get_comment", {"comment_id": MISSING})
    )

    refused(thread, "HTTP 404")
    refused(comment, "HTTP 404")


# --- arguments refused before Attio is called --------------------------------------------------

HOSTILE = ["people/records", "..", "people%2f..", "people?x=1", "people#x"]
PLACES = [
    ("create_object", {"singular_noun": "A", "plural_noun": "As"}, "api_slug"),
    ("update_object", {"plural_noun": "As"}, "object"),
    (
        "create_attribute",
        {"target": "objects", "title": "A", "api_slug": "a", "type": "text"},
        "identifier",
    ),
    ("update_attribute", {"target": "objects", "identifier": "people", "title": "A"}, "attribute"),
    (
        "create_option",
        {"target": "lists", "identifier": "sales_pipeline", "kind": "select", "title": "A"},
        "attribute",
    ),
    (
        "update_option",
        {"target": "lists", "attribute": "priority", "kind": "select", "option": "Low"},
        "identifier",
    ),
    ("create_list", {"name": "A", "api_slug": "a"}, "parent_object"),
    ("update_list", {"name": "A"}, "list"),
    ("get_value_history", {"object": "people", "record_id": MISSING}, "attribute"),
    ("get_value_history", {"list": "x", "attribute": "stage"}, "entry_id"),
    ("get_thread", {}, "thread_id"),
    ("get_comment", {}, "comment_id"),
    ("delete_comment", {}, "comment_id"),
]


def test_path_breaking_arguments_are_refused_before_attio(run_tools, key, fake_attio):
    calls = [
        (name, {**arguments, place: hostile})
        for name, arguments, place in PLACES
        for hostile in HOSTILE
    ]
    results = run_tools(key, *calls)

    for (name, arguments), result in zip(calls, results, strict=True):
        assert result.is_error, (name, arguments)
        assert "Error executing tool" in tool_text(result), (name, arguments)
    assert fake_attio.calls == []
    assert ToolCall.objects.filter(ok=False, attio_status=None).count() == len(calls)


def test_read_only_key_is_refused_the_schema_tools(
    run_tools, alice_connection, make_key, fake_attio
):
    _, read_only = make_key(alice_connection, read_only=True)
    names = sorted(WRITE_TOOLS)
    results = run_tools(read_only, *[(name, {}) for name in names])

    for name, result in zip(names, results, strict=True):
        refused(result, f"This API key is read-only, so it cannot call `{name}`")
    assert fake_attio.calls == []

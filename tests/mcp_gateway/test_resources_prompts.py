"""The workspace schema as MCP resources and the CRM prompts, through the SDK's own client
against the fake Attio: what they list, what a read returns and sends to Attio, and how
they answer a bad slug, an unknown object, a missing argument and a revoked key."""

import json

import pytest
from mcp.shared.exceptions import MCPError

from mcp_gateway import services
from mcp_gateway.models import ToolProfile

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")


@pytest.fixture
def key(alice_key):
    return alice_key[1]


def read(mcp, key, uri: str) -> dict:
    async def body(client):
        return await client.read_resource(uri)

    result = mcp(key, body)
    (content,) = result.contents
    assert content.mime_type == "application/json"
    return json.loads(content.text)


def refused(mcp, key, body) -> MCPError:
    async def run(client):
        with pytest.raises(MCPError) as error:
            await body(client)
        return error.value

    return mcp(key, run)


def test_resources_and_templates_are_listed(mcp, key):
    async def body(client):
        return await client.list_resources(), await client.list_resource_templates()

    resources, templates = mcp(key, body)

    assert {str(r.uri) for r in resources.resources} == {"attio://objects", "attio://lists"}
    assert {t.uri_template for t in templates.resource_templates} == {
        "attio://objects/{object}/attributes",
        "attio://lists/{list}/attributes",
    }
    assert all(r.mime_type == "application/json" for r in resources.resources)


def test_objects_resource_is_what_list_objects_says(mcp, key, fake_attio):
    async def body(client):
        read = await client.read_resource("attio://objects")
        return read.contents, await client.call_tool("list_objects", {})

    (content,), listed = mcp(key, body)
    data = json.loads(content.text)

    assert [o["api_slug"] for o in data["objects"]] == ["people", "companies", "deals"]
    assert data["objects"][0]["object_id"] == fake_attio.store("acme").objects["people"].id
    assert data == listed.structured_content
    assert fake_attio.count("objects.list") == 2


def test_lists_resource_gives_the_lists(mcp, key, fake_attio):
    data = read(mcp, key, "attio://lists")

    assert [x["api_slug"] for x in data["lists"]] == ["sales_pipeline"]
    assert fake_attio.count("lists.list") == 1


def test_object_attributes_template_reads_the_objects_attributes(mcp, key, fake_attio):
    data = read(mcp, key, "attio://objects/deals/attributes")

    by_slug = {a["api_slug"]: a for a in data["attributes"]}
    assert data["target"] == "objects" and data["identifier"] == "deals"
    assert [s["title"] for s in by_slug["stage"]["statuses"]] == [
        "Lead",
        "In Progress",
        "Won",
        "Lost",
    ]
    # Lean: what is not there is left out rather than sent as null.
    assert "options" not in by_slug["name"]
    assert fake_attio.last("attributes.list").path == "/v2/objects/deals/attributes"


def test_list_attributes_template_reads_the_lists_attributes(mcp, key, fake_attio):
    data = read(mcp, key, "attio://lists/sales_pipeline/attributes")

    by_slug = {a["api_slug"]: a for a in data["attributes"]}
    assert [o["title"] for o in by_slug["priority"]["options"]] == ["Low", "Medium", "High"]
    assert fake_attio.last("attributes.list").path == "/v2/lists/sales_pipeline/attributes"


@pytest.mark.parametrize(
    "uri",
    [
        "attio://objects/peo%20ple/attributes",
        "attio://objects/..%2Fself/attributes",
        "attio://lists/a%3Fb/attributes",
        "attio://objects/" + "x" * 129 + "/attributes",
    ],
)
def test_a_bad_slug_is_refused_and_nothing_reaches_attio(mcp, key, fake_attio, uri):
    error = refused(mcp, key, lambda client: client.read_resource(uri))

    assert error.error.code == -32602  # invalid params
    assert not any(c.path.startswith("/v2/") for c in fake_attio.calls)


def test_an_unknown_object_is_not_found_in_the_portals_words(mcp, key, fake_attio):
    uri = "attio://objects/spaceships/attributes"
    error = refused(mcp, key, lambda client: client.read_resource(uri))

    assert error.error.code == -32602
    assert "list_objects" in error.error.message  # the next step, not Attio's raw body
    assert fake_attio.last("attributes.list").path == "/v2/objects/spaceships/attributes"


def test_an_unknown_resource_is_not_found(mcp, key, fake_attio):
    error = refused(mcp, key, lambda client: client.read_resource("attio://records"))

    assert error.error.code == -32602
    assert fake_attio.calls == []


def test_a_revoked_key_reads_nothing(raw, alice, alice_key, fake_attio):
    row, plaintext = alice_key
    services.revoke_api_key(row, by=alice)

    response = raw(
        "POST",
        "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "resources/read",
            "params": {"uri": "attio://objects"},
        },
        headers={
            "Authorization": f"Bearer {plaintext}",
            "Accept": "application/json, text/event-stream",
        },
    )

    assert response.status_code == 401
    assert "revoked" in response.json()["error_description"]
    assert "objects" not in response.text
    assert fake_attio.calls == []


def test_reads_count_against_the_keys_rate_limit(mcp, key, fake_attio, settings):
    settings.MCP_RATE_LIMIT_PER_MINUTE = 1

    async def body(client):
        await client.read_resource("attio://objects")
        with pytest.raises(MCPError) as error:
            await client.read_resource("attio://lists")
        return error.value

    error = mcp(key, body)
    assert "Too many calls" in error.error.message
    assert fake_attio.count("lists.list") == 0


# --- Prompts ------------------------------------------------------------------------------


def test_prompts_are_listed_with_their_arguments(mcp, key):
    async def body(client):
        return (await client.list_prompts()).prompts

    prompts = {p.name: p for p in mcp(key, body)}

    assert set(prompts) == {"prepare_for_meeting", "log_call", "review_pipeline"}
    arguments = {a.name: a for a in prompts["log_call"].arguments}
    assert arguments["contact"].required and arguments["notes"].required
    assert not arguments["follow_ups"].required
    assert all(a.description for p in prompts.values() for a in p.arguments)
    assert all(p.title and p.description for p in prompts.values())


def prompt_text(mcp, key, name: str, arguments: dict) -> str:
    async def body(client):
        return await client.get_prompt(name, arguments)

    (message,) = mcp(key, body).messages
    assert message.role == "user"
    return message.content.text


def test_meeting_prompt_names_the_company_and_the_tools(mcp, key, fake_attio):
    text = prompt_text(mcp, key, "prepare_for_meeting", {"company": "Acme Corp"})

    assert "Acme Corp" in text
    for tool in ("search_records", "get_record", "list_notes", "list_tasks"):
        assert f"`{tool}`" in text
    assert "attio_request" not in text  # a full key has every tool named
    assert fake_attio.calls == []  # a prompt is words only


def test_call_prompt_carries_the_notes_and_follow_ups(mcp, key):
    text = prompt_text(
        mcp,
        key,
        "log_call",
        {"contact": "Ada Lovelace", "notes": "Wants a demo.", "follow_ups": "Send deck by Friday"},
    )

    assert "Ada Lovelace" in text and "Wants a demo." in text and "Send deck by Friday" in text
    assert "`create_note`" in text and "`create_task`" in text
    assert "read-only" not in text


def test_call_prompt_without_follow_ups_asks_before_creating_tasks(mcp, key):
    text = prompt_text(mcp, key, "log_call", {"contact": "Ada", "notes": "Fine."})

    assert "once I agree" in text


def test_pipeline_prompt_names_the_list_tools(mcp, key):
    text = prompt_text(mcp, key, "review_pipeline", {"list": "sales_pipeline"})

    assert "sales_pipeline" in text and "`query_list_entries`" in text


def test_a_compact_key_is_told_how_to_reach_the_other_tools(mcp, alice_connection, make_key):
    _, key = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)

    text = prompt_text(mcp, key, "review_pipeline", {"list": "sales_pipeline"})

    assert "`attio_request`" in text and "`find_attio_operation`" in text


def test_a_read_only_key_is_asked_to_propose_writes_not_make_them(mcp, alice_connection, make_key):
    _, read_only = make_key(alice_connection, read_only=True)
    arguments = {"contact": "Ada", "notes": "Fine."}

    assert "This access is read-only" in prompt_text(mcp, read_only, "log_call", arguments)


def test_a_missing_argument_is_refused(mcp, key):
    error = refused(mcp, key, lambda client: client.get_prompt("log_call", {"contact": "Ada"}))

    assert "notes" in error.error.message

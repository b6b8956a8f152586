"""Tool policies: an admin's tool sets for groups and users limit what their keys and
connected apps are shown and may call, on top of scope and profile, from the next request."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from oauth2_provider.models import Application

from mcp_gateway import auth, tools
from mcp_gateway.models import ConnectedApp, ToolAccess, ToolCall, ToolPolicy, ToolProfile
from mcp_gateway.postgres_checks import PostgresCredentialChecks
from tests.mcp_gateway.conftest import ok, tool_text

from .test_credential_checks import issue_token
from .test_oauth_portal import call_mcp, connect_app
from .test_tool_profiles import listed_names
from .test_tools_confirm import fingerprint

READS = {name for name in tools.REGISTRY if tools.is_read_only(name)}
NO_SUCH_RECORD = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def sales(alice):
    """ "Sales: read everything, write notes and tasks", given to Alice's group."""
    policy = ToolPolicy.objects.create(
        name="Sales", all_read_tools=True, tools=["create_note", "create_task"]
    )
    group = Group.objects.create(name="Sales team")
    policy.groups.add(group)
    alice.groups.add(group)
    return policy


def policy_of(user, **fields) -> ToolPolicy:
    """A tool policy given to `user` directly."""
    policy = ToolPolicy.objects.create(**fields)
    policy.users.add(user)
    return policy


def all_in_one_session(mcp, key, *steps):
    """Run `steps` (each an async function of the client) in one MCP session."""

    async def body(client):
        return [await step(client) for step in steps]

    return mcp(key, body)


async def names(client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


# --- Which tools a caller is shown and may call ---------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_policy_limits_the_tool_list_to_what_it_allows(mcp, alice_key, sales):
    assert listed_names(mcp, alice_key[1]) == READS | {
        "attio_request",
        "create_note",
        "create_task",
    }


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_without_a_policy_every_tool_is_listed_as_before(mcp, alice_key):
    assert not ToolPolicy.objects.exists()
    assert listed_names(mcp, alice_key[1]) == set(tools.REGISTRY)


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_read_only_key_under_a_policy_loses_the_policy_s_writes(
    mcp, alice_connection, make_key, sales
):
    _, read_only = make_key(alice_connection, read_only=True)

    assert listed_names(mcp, read_only) == READS | {"attio_request"}


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_key_under_a_policy_sees_the_compact_tools_it_allows(
    mcp, alice, alice_connection, make_key
):
    policy_of(alice, name="Search", tools=["whoami", "search_records"])
    _, compact = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)

    assert listed_names(mcp, compact) == {"whoami", "search_records"}


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_tool_outside_the_policy_is_refused_naming_it_audited_and_not_sent(
    run_tools, alice_key, sales, fake_attio
):
    refused, allowed = run_tools(
        alice_key[1],
        ("delete_record", {"object": "people", "record_id": NO_SUCH_RECORD}),
        ("list_objects", {}),
    )

    assert refused.is_error
    text = tool_text(refused)
    assert "`delete_record`" in text and 'tool policy "Sales"' in text and "admins" in text
    assert not allowed.is_error
    assert [c.path for c in fake_attio.calls if c.path.startswith("/v2/")] == ["/v2/objects"]
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.error_code) for r in rows] == [
        ("delete_record", False, "not_in_policy"),
        ("list_objects", True, ""),
    ]


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_the_tools_a_policy_names_may_be_called(call_tool, alice_key, sales, fake_attio):
    created = call_tool(
        alice_key[1],
        "create_task",
        {"content": "Send the proposal", "deadline_at": "2030-01-01T09:00:00Z"},
    )

    assert not created.is_error, tool_text(created)
    assert any(c.method == "POST" and c.path == "/v2/tasks" for c in fake_attio.calls)


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_whoami_names_the_policies_that_limit_the_caller(run_tools, alice, alice_key, sales):
    (answer,) = run_tools(alice_key[1], ("whoami", {}))

    assert ok(answer)["tool_policies"] == ["Sales"]


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_policy_of_named_tools_only_leaves_out_the_other_reads(mcp, alice, alice_key):
    policy_of(alice, name="Notes only", tools=["whoami", "create_note"])

    assert listed_names(mcp, alice_key[1]) == {"whoami", "create_note"}


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_two_policies_allow_what_either_allows_and_a_refusal_names_both(
    mcp, alice, alice_key, sales
):
    policy_of(alice, name="Support", tools=["create_comment"])

    async def delete_a_note(client):
        return await client.call_tool("delete_note", {"note_id": NO_SUCH_RECORD})

    listed, refused = all_in_one_session(mcp, alice_key[1], names, delete_a_note)

    assert listed == READS | {"attio_request", "create_note", "create_task", "create_comment"}
    assert refused.is_error
    assert 'tool policies "Sales" and "Support"' in tool_text(refused)


# --- attio_request under a policy ----------------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_under_every_read_tool_attio_request_reads_but_does_not_write(
    run_tools, alice_key, sales, fake_attio
):
    read, write, found = run_tools(
        alice_key[1],
        ("attio_request", {"method": "GET", "path": "/v2/objects"}),
        (
            "attio_request",
            {
                "method": "DELETE",
                "path": "/v2/objects/{object}/records/{record_id}",
                "path_params": {"object": "people", "record_id": NO_SUCH_RECORD},
            },
        ),
        ("find_attio_operation", {"query": "delete record"}),
    )

    assert not read.is_error
    assert write.is_error
    text = tool_text(write)
    assert "DELETE /v2/objects/{object}/records/{record_id} writes" in text
    assert 'tool policy "Sales"' in text and "only read" in text
    assert not any(c.method == "DELETE" for c in fake_attio.calls)
    # Nor does the search offer writes it could not make.
    assert "DELETE" not in tool_text(found)
    rows = ToolCall.objects.order_by("pk")
    assert [r.error_code for r in rows][:2] == ["", "not_in_policy"]


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_attio_request_named_in_a_policy_may_write(call_tool, alice, alice_key, acme, fake_attio):
    policy_of(alice, name="Power users", tools=["attio_request"])

    answer = call_tool(
        alice_key[1],
        "attio_request",
        {
            "method": "POST",
            "path": "/v2/notes",
            "body": {
                "data": {
                    "parent_object": "people",
                    "parent_record_id": acme.record_id("people", "Ada Lovelace"),
                    "title": "Call",
                    "format": "plaintext",
                    "content": "Spoke about pricing",
                }
            },
        },
    )

    assert not answer.is_error, tool_text(answer)
    assert any(c.method == "POST" and c.path == "/v2/notes" for c in fake_attio.calls)


# --- From the next request ------------------------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_policy_change_counts_from_the_next_request(mcp, alice, alice_key):
    policy = ToolPolicy.objects.create(name="Sales", all_read_tools=True)
    group = Group.objects.create(name="Sales team")
    policy.groups.add(group)

    # Each change is made between two requests of one MCP session.
    async def add_to_group(client):
        await sync_to_async(alice.groups.add)(group)

    async def name_a_tool(client):
        await sync_to_async(ToolPolicy.objects.filter(pk=policy.pk).update)(tools=["create_note"])

    async def delete_the_policy(client):
        await sync_to_async(ToolPolicy.objects.filter(pk=policy.pk).delete)()

    before, _, in_group, _, named, _, deleted = all_in_one_session(
        mcp,
        alice_key[1],
        names,
        add_to_group,
        names,
        name_a_tool,
        names,
        delete_the_policy,
        names,
    )

    assert before == set(tools.REGISTRY)
    assert in_group == READS | {"attio_request"}
    assert named == READS | {"attio_request", "create_note"}
    assert deleted == set(tools.REGISTRY)


# --- OAuth apps -----------------------------------------------------------------------------


def test_a_connected_app_is_limited_by_its_user_s_policy(portal, alice, alice_connection, sales):
    approval = connect_app(portal, "alice", access="read_write")

    listed = call_mcp(portal, approval.access_token).json()["result"]["tools"]
    assert {t["name"] for t in listed} == READS | {"attio_request", "create_note", "create_task"}
    refused = call_mcp(
        portal,
        approval.access_token,
        "tools/call",
        {"name": "delete_record", "arguments": {"object": "people", "record_id": NO_SUCH_RECORD}},
    ).json()["result"]
    assert refused["isError"] and 'tool policy "Sales"' in refused["content"][0]["text"]


# --- Resources ------------------------------------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_resource_read_follows_the_policy_of_the_tool_behind_it_and_is_audited(
    mcp, alice, alice_key, fake_attio
):
    policy_of(alice, name="Objects only", tools=["list_objects"])

    async def body(client):
        objects = await client.read_resource("attio://objects")
        try:
            await client.read_resource("attio://objects/people/attributes")
        except Exception as error:  # the SDK raises the server's error
            return objects, str(error)
        return objects, None

    objects, refusal = mcp(alice_key[1], body)

    assert "people" in objects.contents[0].text
    assert refusal is not None and "`list_attributes`" in refusal and '"Objects only"' in refusal
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.error_code, r.attio_status) for r in rows] == [
        ("resource:list_objects", True, "", 200),
        ("resource:list_attributes", False, "not_in_policy", None),
    ]


# --- Both credential checks read the policies -----------------------------------------------


@pytest.fixture
def alice_token(alice, alice_connection):
    """A read-write OAuth access token of an app Alice connected."""
    client = Application.objects.create(
        name="Claude", client_type="public", authorization_grant_type="authorization-code",
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
    )  # fmt: skip
    app = ConnectedApp.objects.create(
        user=alice, client=client, connection=alice_connection, token_family=uuid.uuid4(),
        code_checksum=uuid.uuid4().hex, read_only=False,
    )  # fmt: skip
    return issue_token(app, client, alice, scope="attio.read attio.write")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the pool sees committed rows only
@pytest.mark.parametrize("credential", ["api key", "oauth token"])
@pytest.mark.parametrize("implementation", ["orm", "postgres pool"])
def test_both_credential_checks_read_the_owner_s_policies_afresh(
    implementation, credential, alice, alice_key, alice_token, make_user
):
    checks = (
        auth.CredentialChecks() if implementation == "orm" else PostgresCredentialChecks(connection)
    )

    async def check():
        async with checks.running():
            if credential == "api key":
                return (await checks.check(alice_key[1])).owner.tool_access
            caller, _ = await checks.check_oauth_token(alice_token)
            return caller.tool_access

    assert async_to_sync(check)() is None
    direct = policy_of(alice, name="Direct", tools=["whoami"])
    via_group = ToolPolicy.objects.create(name="By group", all_read_tools=True, tools=["x"])
    group = Group.objects.create(name="Team")
    via_group.groups.add(group)
    alice.groups.add(group)
    # The same policy through the user and two groups counts once.
    second_group = Group.objects.create(name="Team too")
    via_group.groups.add(second_group)
    via_group.users.add(alice)
    alice.groups.add(second_group)
    # Someone else's policy, through another group, is not Alice's.
    other = ToolPolicy.objects.create(name="Other", tools=["delete_record"])
    other_group = Group.objects.create(name="Others")
    other.groups.add(other_group)
    make_user("carol").groups.add(other_group)

    assert async_to_sync(check)() == ToolAccess(
        policies=("By group", "Direct"), all_read_tools=True, tools=frozenset({"whoami", "x"})
    )
    via_group.users.remove(alice)
    group.delete()
    assert async_to_sync(check)() == ToolAccess(
        policies=("By group", "Direct"), all_read_tools=True, tools=frozenset({"whoami", "x"})
    )
    alice.groups.remove(second_group)
    assert async_to_sync(check)() == ToolAccess(
        policies=("Direct",), all_read_tools=False, tools=frozenset({"whoami"})
    )
    # A policy that allows nothing still limits: to nothing.
    ToolPolicy.objects.filter(pk=direct.pk).update(tools=[])
    assert async_to_sync(check)() == ToolAccess(
        policies=("Direct",), all_read_tools=False, tools=frozenset()
    )


def test_tool_access_names_its_policies():
    one = ToolAccess.of([("Sales", True, [])])
    three = ToolAccess.of([("B", False, ["a"]), ("A", False, None), ("C", False, ["b", 3])])

    assert ToolAccess.of([]) is None
    assert one.named == '"Sales"'
    assert three.named == '"A", "B" and "C"'
    assert three.tools == {"a", "b"}  # what is not a tool name is ignored


# --- Refusals that the policy decides --------------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_an_empty_policy_leaves_no_tool(mcp, alice, alice_key, fake_attio):
    policy_of(alice, name="Nothing yet")

    async def whoami(client):
        return await client.call_tool("whoami", {})

    listed, refused = all_in_one_session(mcp, alice_key[1], names, whoami)

    assert listed == set()
    assert refused.is_error and '"Nothing yet"' in tool_text(refused)
    assert not [c for c in fake_attio.calls if c.path.startswith("/v2/")]


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_key_is_told_of_the_policy_not_of_a_full_key(
    run_tools, alice, alice_connection, make_key, fake_attio
):
    """The policy is checked before the profile: a full key would not help."""
    policy_of(alice, name="Readers", all_read_tools=True)
    _, compact = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)

    (refused,) = run_tools(compact, ("create_note", {}))

    text = tool_text(refused)
    assert '"Readers"' in text and "full profile" not in text
    assert ToolCall.objects.get().error_code == "not_in_policy"


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_key_is_not_sent_to_attio_request_where_the_policy_leaves_it_out(
    run_tools, alice, alice_connection, make_key
):
    policy_of(alice, name="Notes", tools=["whoami", "create_note"])
    _, compact = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)

    (refused,) = run_tools(compact, ("create_note", {}))

    text = tool_text(refused)
    assert "compact tool profile" in text and "Create a key with the full profile" in text
    assert "attio_request" not in text
    assert ToolCall.objects.get().error_code == "not_in_profile"


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_find_attio_operation_offers_nothing_without_attio_request(
    run_tools, alice, alice_key, fake_attio
):
    policy_of(alice, name="Finders", tools=["find_attio_operation"])

    searched, described = run_tools(
        alice_key[1],
        ("find_attio_operation", {"query": "list objects"}),
        ("find_attio_operation", {"operation": "GET /v2/objects"}),
    )

    assert ok(searched)["matches"] == []
    assert described.is_error
    text = tool_text(described)
    assert "`attio_request` is left out by" in text and '"Finders"' in text


def test_a_read_only_app_is_not_asked_to_step_up_for_a_write_the_policy_refuses(
    portal, alice, alice_connection, sales, fake_attio
):
    """A 403 insufficient_scope would send the user to grant writes that the policy
    refuses anyway: the policy's refusal comes first, as a tool error."""
    approval = connect_app(portal, "alice", access="read_only")

    answer = call_mcp(
        portal,
        approval.access_token,
        "tools/call",
        {
            "name": "attio_request",
            "arguments": {"method": "POST", "path": "/v2/notes", "body": {"data": {}}},
        },
    )

    assert answer.status_code == 200
    result = answer.json()["result"]
    assert result["isError"] and 'tool policy "Sales"' in result["content"][0]["text"]
    assert not any(c.method == "POST" for c in fake_attio.calls)


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_confirm_after_the_policy_dropped_the_tool_is_refused(mcp, alice, alice_key, fake_attio):
    policy = policy_of(alice, name="Bulk", tools=["bulk_upsert_records"])
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "records": [{"domains": "new.com", "name": "New"}],
    }

    async def body(client):
        preview = await client.call_tool("bulk_upsert_records", arguments)
        await sync_to_async(ToolPolicy.objects.filter(pk=policy.pk).update)(tools=["whoami"])
        confirmed = {**arguments, "confirm": fingerprint(preview)}
        return await client.call_tool("bulk_upsert_records", confirmed)

    refused = mcp(alice_key[1], body)

    assert refused.is_error and '"Bulk"' in tool_text(refused)
    assert not [c for c in fake_attio.calls if c.method == "PUT" or c.path.endswith("/records")]


# --- Resources and prompts under a policy ----------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_resources_are_listed_only_where_their_tool_is_allowed(mcp, alice, alice_key):
    async def listed(client):
        resources = await client.list_resources()
        templates = await client.list_resource_templates()
        return (
            {str(r.uri) for r in resources.resources},
            {t.uri_template for t in templates.resource_templates},
        )

    async def limit(client):
        policy = await ToolPolicy.objects.acreate(name="Objects only", tools=["list_objects"])
        await policy.users.aadd(alice)

    before, _, after = all_in_one_session(mcp, alice_key[1], listed, limit, listed)

    assert before == (
        {"attio://objects", "attio://lists"},
        {"attio://objects/{object}/attributes", "attio://lists/{list}/attributes"},
    )
    assert after == ({"attio://objects"}, set())


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_prompt_proposes_the_writes_a_policy_refuses(mcp, alice, alice_key):
    async def prompt(client):
        answer = await client.get_prompt("log_call", {"contact": "Ada", "notes": "Pricing"})
        return answer.messages[0].content.text

    async def readers_only(client):
        policy = await ToolPolicy.objects.acreate(name="Readers", all_read_tools=True)
        await policy.users.aadd(alice)

    async def and_notes(client):
        await ToolPolicy.objects.filter(name="Readers").aupdate(tools=["create_note"])

    steps = (prompt, readers_only, prompt, and_notes, prompt)
    free, _, readers, _, notes = all_in_one_session(mcp, alice_key[1], *steps)

    assert "allows no writes" not in free
    assert "allows no writes" in readers
    assert "allows no writes" not in notes


# --- The admin and the dashboard ------------------------------------------------------------

POLICIES = "/admin/mcp_gateway/toolpolicy/"


def test_an_admin_makes_a_policy_for_a_group(client, staff, alice):
    group = Group.objects.create(name="Sales team")
    client.force_login(staff)

    page = client.get(f"{POLICIES}add/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Tools that read" in body and "Tools that write" in body
    assert 'value="create_note"' in body and "every read tool" in body.lower()

    answer = client.post(
        f"{POLICIES}add/",
        {
            "name": "Sales",
            "description": "Read everything, write notes and tasks",
            "all_read_tools": "on",
            "tools": ["create_task", "create_note"],
            "groups": [group.pk],
        },
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    policy = ToolPolicy.objects.get()
    assert policy.tools == ["create_note", "create_task"]  # the registry's order
    assert list(policy.groups.all()) == [group]
    listing = client.get(POLICIES).content.decode()
    assert "Sales" in listing and "Sales team" in listing


def test_the_admin_refuses_a_tool_that_does_not_exist(client, staff):
    client.force_login(staff)

    answer = client.post(f"{POLICIES}add/", {"name": "Odd", "tools": ["drop_database"]})

    assert answer.status_code == 200
    assert "drop_database is not one of the available choices" in answer.content.decode()
    assert not ToolPolicy.objects.exists()


def test_the_dashboard_says_which_policy_limits_the_user(client, alice, alice_connection, sales):
    client.force_login(alice)

    page = client.get(reverse("dashboard")).content.decode()

    assert 'id="tool-policy"' in page
    assert "tool policy &quot;Sales&quot;" in page
    assert "every tool that reads" in page and "<code>create_note</code>" in page


def test_the_dashboard_says_nothing_of_policies_without_one(client, alice, alice_connection):
    client.force_login(alice)

    assert 'id="tool-policy"' not in client.get(reverse("dashboard")).content.decode()


def test_the_admin_pages_bear_a_policy_written_outside_the_form(client, staff):
    """A row from a shell or a fixture, with `tools` not a list: pages, not a 500."""
    policy = ToolPolicy.objects.create(name="Odd", tools=5)
    client.force_login(staff)

    listing = client.get(POLICIES)
    change = client.get(f"{POLICIES}{policy.pk}/change/")

    assert listing.status_code == 200 and "Odd" in listing.content.decode()
    assert change.status_code == 200


def test_the_dashboard_says_when_a_policy_allows_no_tool(client, alice, alice_connection):
    policy_of(alice, name="Nothing yet")
    client.force_login(alice)

    page = client.get(reverse("dashboard")).content.decode()

    assert 'id="tool-policy"' in page and "no tools." in page

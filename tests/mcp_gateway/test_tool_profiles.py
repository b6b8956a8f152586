"""Tool profiles: a compact key or connected app sees and may call only the compact tools;
the key form, the consent page, the dashboard and the admin offer and show the profile."""

import re

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.urls import reverse

from mcp_gateway import services, tools
from mcp_gateway.forms import ApiKeyForm
from mcp_gateway.models import ApiKey, ConnectedApp, ToolCall, ToolProfile
from tests.mcp_gateway.conftest import tool_text

from .oauth_flow import LOOPBACK_REDIRECT, Person
from .test_oauth_portal import call_mcp, connect_app


def listed_names(mcp, key) -> set[str]:
    async def body(client):
        return {t.name for t in (await client.list_tools()).tools}

    return mcp(key, body)


# --- Over MCP -------------------------------------------------------------------------------


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_key_sees_only_the_compact_tools(mcp, alice_connection, make_key):
    _, compact = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)

    assert listed_names(mcp, compact) == tools.COMPACT & set(tools.REGISTRY)


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_full_key_sees_every_tool(mcp, alice_key):
    assert listed_names(mcp, alice_key[1]) == set(tools.REGISTRY)


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_read_only_key_sees_the_compact_tools_it_may_use(mcp, alice_connection, make_key):
    _, key = make_key(alice_connection, read_only=True, tool_profile=ToolProfile.COMPACT)

    names = listed_names(mcp, key)
    assert names <= tools.COMPACT
    assert {"whoami", "search_records", "list_objects", "list_attributes"} <= names


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_tool_outside_the_profile_is_refused_naming_it_and_audited(
    run_tools, alice_connection, make_key, fake_attio
):
    _, key = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)
    refused, allowed = run_tools(
        key,
        ("get_record", {"object": "people", "record_id": "00000000-0000-4000-8000-000000000000"}),
        ("list_objects", {}),
    )

    assert refused.is_error
    text = tool_text(refused)
    assert "compact tool profile" in text and "`get_record`" in text
    assert "`attio_request`" in text and "full profile" in text and "http" in text
    assert not allowed.is_error
    # Only list_objects reached Attio.
    assert [c.path for c in fake_attio.calls if c.path.startswith("/v2/")] == ["/v2/objects"]
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.error_code, r.attio_status) for r in rows] == [
        ("get_record", False, "not_in_profile", None),
        ("list_objects", True, "", 200),
    ]


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_compact_write_tool_call_is_refused_for_the_profile_not_the_scope(
    run_tools, alice_connection, make_key, fake_attio
):
    _, key = make_key(alice_connection, read_only=True, tool_profile=ToolProfile.COMPACT)
    (result,) = run_tools(key, ("create_record", {"object": "people", "values": {"name": "x"}}))

    assert "compact tool profile" in tool_text(result)
    assert ToolCall.objects.get().error_code == "not_in_profile"
    assert fake_attio.calls == []


# --- The key form and the dashboard ---------------------------------------------------------


def new_key_form(**fields) -> dict:
    return {
        "name": "Claude",
        "access": "read_only",
        "expires": "30",
        "nonce": "form-profile",
        **fields,
    }


def test_the_key_form_offers_the_profiles_starting_on_full(client, alice, alice_connection):
    client.force_login(alice)

    page = client.get(reverse("mcp_gateway:key-create"))

    form = page.context["form"]
    assert form["tool_profile"].value() == ToolProfile.FULL
    assert [c[0] for c in form.fields["tool_profile"].choices] == ["full", "compact"]
    assert "<legend>Tools</legend>" in page.text
    assert "pay for every tool definition in every conversation" in page.text
    assert 'value="full" id="id_tool_profile_0" checked' in page.text


def test_a_compact_key_is_created_shown_on_the_dashboard_and_kept_when_rolled(
    client, alice, alice_connection
):
    client.force_login(alice)
    form = new_key_form(connection=alice_connection.pk, tool_profile="compact")

    response = client.post(reverse("mcp_gateway:key-create"), form)

    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert key.tool_profile == ToolProfile.COMPACT
    dashboard = client.get(reverse("dashboard")).text
    assert "compact tools" in dashboard
    successor, _ = services.roll_api_key(key, by=alice)
    assert successor.tool_profile == ToolProfile.COMPACT


def test_a_key_posted_without_a_profile_is_full(alice, alice_connection):
    form = ApiKeyForm(new_key_form(connection=alice_connection.pk), owner=alice)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["tool_profile"] == ToolProfile.FULL


def test_an_unknown_profile_is_refused(alice, alice_connection):
    form = ApiKeyForm(
        new_key_form(connection=alice_connection.pk, tool_profile="everything"), owner=alice
    )

    assert not form.is_valid()
    assert "tool_profile" in form.errors


def test_the_admin_shows_the_keys_profile(client, staff, alice_connection, make_key):
    key, _ = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)
    client.force_login(staff)

    listing = client.get(reverse("admin:mcp_gateway_apikey_changelist")).text
    page = client.get(reverse("admin:mcp_gateway_apikey_change", args=[key.pk])).text

    assert "Compact: search, schema and the generic Attio request" in listing
    assert "Compact: search, schema and the generic Attio request" in page


# --- The consent page -----------------------------------------------------------------------


@pytest.fixture
def fresh_registration_limit():
    # RegisterView counts registrations per address in the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("fresh_registration_limit")
def test_a_compact_consent_makes_a_compact_app_that_lists_compact_tools(
    portal, client, alice, alice_connection
):
    approval = connect_app(portal, "alice", tool_profile="compact")

    app = ConnectedApp.objects.get()
    assert app.tool_profile == ToolProfile.COMPACT
    answer = call_mcp(portal, approval.access_token)
    assert {t["name"] for t in answer.json()["result"]["tools"]} <= tools.COMPACT
    client.force_login(alice)
    assert "compact tools" in client.get(reverse("dashboard")).text
    refused = call_mcp(
        portal, approval.access_token, "tools/call", {"name": "list_notes", "arguments": {}}
    )
    text = refused.json()["result"]["content"][0]["text"]
    assert "This app was connected with the compact tool profile" in text


@pytest.mark.usefixtures("fresh_registration_limit")
def test_a_consent_without_a_profile_makes_a_full_app(portal, alice, alice_connection):
    connect_app(portal, "alice")

    assert ConnectedApp.objects.get().tool_profile == ToolProfile.FULL


@pytest.mark.usefixtures("fresh_registration_limit")
def test_the_consent_page_offers_the_profiles(portal, alice, alice_connection):
    registration = httpx.post(
        f"{portal}/oauth/register/",
        json={
            "client_name": "Profiles",
            "redirect_uris": [LOOPBACK_REDIRECT],
            "token_endpoint_auth_method": "none",
        },
    )
    client_id = registration.json()["client_id"]
    url = (
        f"{portal}/oauth/authorize/?response_type=code&client_id={client_id}"
        f"&redirect_uri={LOOPBACK_REDIRECT}&code_challenge={'a' * 43}"
        "&code_challenge_method=S256&state=s"
    )

    async def open_page():
        person = Person(portal, "alice")
        try:
            return await person.open(url)
        finally:
            await person.close()

    page = async_to_sync(open_page)().text
    assert "<legend>Tools</legend>" in page
    assert re.search(r'value="full"[^>]*checked', page)
    assert "pay for every tool definition in every conversation" in page

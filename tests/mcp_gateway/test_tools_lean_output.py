"""Lean record, entry and note reads over MCP, against the fake Attio: each value as what it
means, one value or a list as the schema says, only the attributes asked for, long texts
cut with a way to get the rest, and the text content equal to the structured content."""

import json

import httpx
import pytest

from mcp_gateway.models import ToolCall
from mcp_gateway.tools import _call
from tests.fake_attio import rest
from tests.fake_attio.model import AttributeDef, seed_id
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

PEOPLE_SLUGS = "company, created_by, email_addresses, job_title, name, phone_numbers"


@pytest.fixture
def alice_actor(fake_attio):
    return {"type": "workspace-member", "id": fake_attio.workspace("acme").member_id}


def get(acme, object: str, name: str, **options) -> tuple[str, dict]:
    return ("get_record", {"object": object, "record_id": acme.record_id(object, name), **options})


# --- each value as what it means ---------------------------------------------------------------


def test_people_values_are_what_they_mean(call_tool, key, acme, alice_actor):
    data = ok(call_tool(key, *get(acme, "people", "Ada Lovelace")))

    assert data["values"] == {
        "name": "Ada Lovelace",
        "email_addresses": ["ada@acme.com"],
        "phone_numbers": ["+14155550101"],
        "company": {"object": "companies", "record_id": acme.record_id("companies", "Acme Corp")},
        "job_title": "Chief Analyst",
        "created_by": alice_actor,
    }
    assert data["name"] == "Ada Lovelace"


def test_company_values_are_what_they_mean(call_tool, key, acme, alice_actor):
    data = ok(call_tool(key, *get(acme, "companies", "Acme Corp")))

    assert data["values"] == {
        "name": "Acme Corp",
        "domains": ["acme.com"],
        "description": "Makes everything.",
        "categories": ["B2B", "Enterprise"],
        "team": [{"object": "people", "record_id": acme.record_id("people", "Ada Lovelace")}],
        "created_by": alice_actor,
    }


def test_deal_values_are_what_they_mean(call_tool, key, acme, alice_actor):
    data = ok(call_tool(key, *get(acme, "deals", "Acme expansion")))

    assert data["values"] == {
        "name": "Acme expansion",
        "stage": "In Progress",
        "value": {"amount": 50000, "currency": "USD"},
        "owner": alice_actor,
        "associated_company": {
            "object": "companies",
            "record_id": acme.record_id("companies", "Acme Corp"),
        },
        "associated_people": [
            {"object": "people", "record_id": acme.record_id("people", "Ada Lovelace")}
        ],
        "created_by": alice_actor,
    }


def add_attribute(acme, object: str, slug: str, type: str, **config) -> None:
    parent = acme.objects[object]
    parent.attributes[slug] = AttributeDef(
        id=seed_id("acme", "test-attribute", object, slug),
        parent_id=parent.id,
        api_slug=slug,
        title=slug,
        type=type,
        created_at=parent.created_at,
        **config,
    )


def test_the_other_value_types_are_what_they_mean(run_tools, key, acme, alice_actor):
    for slug, type in [
        ("score", "number"),
        ("vip", "checkbox"),
        ("stars", "rating"),
        ("birthday", "date"),
        ("last_seen", "timestamp"),
        ("office", "location"),
        ("last_contact", "interaction"),
    ]:
        add_attribute(acme, "people", slug, type)
    ada = acme.record_id("people", "Ada Lovelace")
    # The fake cannot write timestamps and interactions (Attio writes interactions
    # itself): they are stored as Attio would send them. (The document gives timestamp
    # values in records the format `date`, and the fake checks it.)
    history = {"active_from": "2024-02-01T10:00:00.000000000Z", "active_until": None}
    acme.records[ada].values["last_seen"] = [
        {
            **history,
            "created_by_actor": alice_actor,
            "attribute_type": "timestamp",
            "value": "2024-02-01",
        }
    ]
    acme.records[ada].values["last_contact"] = [
        {
            **history,
            "created_by_actor": alice_actor,
            "attribute_type": "interaction",
            "interaction_type": "email",
            "interacted_at": "2024-02-01T09:30:00.000000000Z",
            "owner_actor": alice_actor,
        }
    ]
    office = {"line_1": "12 St James's Square", "locality": "London", "country_code": "GB"}
    values = {"score": 42, "vip": True, "stars": 4, "birthday": "1815-12-10", "office": office}
    updated, got = run_tools(
        key,
        ("update_record", {"object": "people", "record_id": ada, "values": values}),
        ("get_record", {"object": "people", "record_id": ada}),
    )

    expected = {
        **values,
        "last_seen": "2024-02-01",
        "last_contact": {"type": "email", "at": "2024-02-01T09:30:00.000000000Z"},
    }
    for data in (ok(updated), ok(got)):
        assert {slug: data["values"][slug] for slug in expected} == expected


def test_list_entry_values_are_what_they_mean(call_tool, key, acme):
    data = ok(call_tool(key, "query_list_entries", {"list": "sales_pipeline"}))

    by_company = {e["parent_record_id"]: e["entry_values"] for e in data["entries"]}
    assert by_company == {
        acme.record_id("companies", "Acme Corp"): {"stage": "Qualified", "priority": "High"},
        acme.record_id("companies", "Initech"): {"stage": "Prospecting", "priority": "Medium"},
    }


def test_options_given_by_id_alone_are_shown_by_title(run_tools, key, fake_attio, acme):
    # The document's `output-value` lets a select value carry its option's id alone,
    # though its record answers always carry the option: this answer leaves strict mode.
    fake_attio.strict_spec = False
    acme_corp = acme.record_id("companies", "Acme Corp")
    api = rest.RestApi(fake_attio)

    def options_by_id(ctx):
        body = api.record_json(acme, acme.records[acme_corp])
        for value in body["values"]["categories"]:
            value["option"] = value["option"]["id"]["option_id"]
        return httpx.Response(200, json={"data": body})

    fake_attio.add_route(
        "GET", rf"/v2/objects/companies/records/{acme_corp}", "records.get", options_by_id
    )
    first, second = run_tools(key, *[get(acme, "companies", "Acme Corp")] * 2)

    assert ok(first)["values"]["categories"] == ["B2B", "Enterprise"]
    assert ok(second)["values"]["categories"] == ["B2B", "Enterprise"]
    # The titles are read once, and kept with the schema.
    assert fake_attio.last("options.list").path == (
        "/v2/objects/companies/attributes/categories/options"
    )
    assert fake_attio.count("options.list") == 1


# --- one value or a list -----------------------------------------------------------------------


def test_a_list_only_for_multiselect_attributes(call_tool, key, acme):
    data = ok(call_tool(key, *get(acme, "companies", "Hooli")))

    values = data["values"]
    # One category, one team member: lists of one, since each may hold several.
    assert values["categories"] == ["B2C"]
    assert values["team"] == [
        {"object": "people", "record_id": acme.record_id("people", "Alan Turing")}
    ]
    assert values["name"] == "Hooli"


def test_query_records_shapes_every_record(call_tool, key, acme):
    data = ok(call_tool(key, "query_records", {"object": "people", "limit": 2}))

    assert [r["values"]["email_addresses"] for r in data["records"]] == [
        ["ada@acme.com"],
        ["grace@initech.com"],
    ]
    assert [r["values"]["job_title"] for r in data["records"]] == [
        "Chief Analyst",
        "Head of Engineering",
    ]


# --- only the attributes asked for -------------------------------------------------------------


def test_attributes_names_the_values_to_return(run_tools, key, acme):
    got, queried, entries = run_tools(
        key,
        get(acme, "people", "Grace Hopper", attributes=["job_title", "phone_numbers", "company"]),
        ("query_records", {"object": "people", "attributes": ["email_addresses"], "limit": 2}),
        ("query_list_entries", {"list": "sales_pipeline", "attributes": ["stage"]}),
    )

    # Grace has no phone number: named, it comes back empty rather than missing.
    assert ok(got)["values"] == {
        "job_title": "Head of Engineering",
        "phone_numbers": [],
        "company": {"object": "companies", "record_id": acme.record_id("companies", "Initech")},
    }
    assert ok(got)["name"] == "Grace Hopper"
    assert [r["values"] for r in ok(queried)["records"]] == [
        {"email_addresses": ["ada@acme.com"]},
        {"email_addresses": ["grace@initech.com"]},
    ]
    assert [e["entry_values"] for e in ok(entries)["entries"]] == [
        {"stage": "Qualified"},
        {"stage": "Prospecting"},
    ]


def test_an_unknown_attribute_is_answered_with_the_valid_ones(run_tools, key, fake_attio, acme):
    record, entries = run_tools(
        key,
        get(acme, "people", "Ada Lovelace", attributes=["emails", "job_title"]),
        ("query_list_entries", {"list": "sales_pipeline", "attributes": ["stag"]}),
    )

    assert record.is_error
    assert (
        "Unknown attribute slug(s): emails. The object `people` has these attribute slugs: "
        f"{PEOPLE_SLUGS}." in tool_text(record)
    )
    assert entries.is_error
    assert "The list `sales_pipeline` has these attribute slugs: priority, stage." in (
        tool_text(entries)
    )
    assert [c.error_code for c in ToolCall.objects.order_by("pk")] == ["unknown_attribute"] * 2


def test_an_unknown_attribute_is_found_without_the_schema(run_tools, key, fake_attio, acme):
    # Attio's answer names every attribute, with a value or without.
    fake_attio.fail_next("attributes.list", status=403)
    [result] = run_tools(key, get(acme, "people", "Ada Lovelace", attributes=["emails"]))

    assert result.is_error
    assert f"has these attribute slugs: {PEOPLE_SLUGS}." in tool_text(result)


def test_too_many_attributes_are_refused_before_attio(call_tool, key, fake_attio, acme):
    result = call_tool(key, *get(acme, "people", "Ada Lovelace", attributes=["name"] * 51))

    assert result.is_error
    assert "attributes: must have at most 50 items" in tool_text(result)
    assert fake_attio.calls == []


# --- the schema: read once a minute, and never in the way --------------------------------------


def test_the_schema_is_read_once_per_object(run_tools, key, fake_attio, acme):
    results = run_tools(
        key,
        get(acme, "people", "Ada Lovelace"),
        get(acme, "people", "Grace Hopper"),
        ("query_records", {"object": "people"}),
        get(acme, "companies", "Initech"),
        get(acme, "companies", "Hooli"),
    )

    assert all(not r.is_error for r in results)
    # Cold, a read costs one schema call; warm, none.
    assert [c.endpoint for c in fake_attio.calls] == [
        "records.get",
        "attributes.list",
        "records.get",
        "records.query",
        "records.get",
        "attributes.list",
        "records.get",
    ]
    assert [c.path for c in fake_attio.calls_to("attributes.list")] == [
        "/v2/objects/people/attributes",
        "/v2/objects/companies/attributes",
    ]
    # The audit keeps the status of the tool's own call.
    assert {c.attio_status for c in ToolCall.objects.all()} == {200}


def test_the_schema_is_read_again_when_its_minute_is_over(
    run_tools, key, fake_attio, acme, monkeypatch
):
    monkeypatch.setattr(_call, "ATTRIBUTE_SLUGS_SECONDS", 0.0)
    run_tools(key, *[get(acme, "people", "Ada Lovelace")] * 2)

    assert fake_attio.count("attributes.list") == 2


@pytest.mark.parametrize(("status", "times"), [(403, 1), (500, 3)])
def test_a_schema_attio_would_not_give_leaves_every_value_a_list(
    run_tools, key, fake_attio, acme, status, times
):
    fake_attio.fail_next("attributes.list", status=status, times=times)
    first, second = run_tools(key, *[get(acme, "people", "Ada Lovelace")] * 2)

    values = ok(first)["values"]
    assert values["job_title"] == ["Chief Analyst"]
    assert values["name"] == ["Ada Lovelace"]
    assert values["company"] == [
        {"object": "companies", "record_id": acme.record_id("companies", "Acme Corp")}
    ]
    assert ok(second)["values"] == values
    # Not asked again within the minute, and not held against the read.
    assert fake_attio.count("attributes.list") == times
    assert [(c.ok, c.attio_status) for c in ToolCall.objects.all()] == [(True, 200)] * 2


# --- long texts ------------------------------------------------------------------------------


def cut_text(text: str, limit: int, more: str) -> str:
    return f"{text[:limit]}… [cut at {limit:,} of {len(text):,} characters: {more} gives all]"


def test_long_texts_are_cut_and_full_text_gives_them_whole(run_tools, key, acme):
    hooli = acme.record_id("companies", "Hooli")
    long = "Hooli makes the internet a better place. " * 130
    updated, got, whole, queried = run_tools(
        key,
        (
            "update_record",
            {"object": "companies", "record_id": hooli, "values": {"description": long}},
        ),
        ("get_record", {"object": "companies", "record_id": hooli}),
        ("get_record", {"object": "companies", "record_id": hooli, "full_text": ["description"]}),
        ("query_records", {"object": "companies", "filter": {"name": "Hooli"}}),
    )

    cut = cut_text(long, 2000, 'get_record with full_text=["description"]')
    assert ok(updated)["values"]["description"] == cut
    assert ok(got)["values"]["description"] == cut
    assert ok(whole)["values"]["description"] == long
    assert ok(queried)["records"][0]["values"]["description"] == cut
    # Short texts are whole either way.
    assert ok(got)["values"]["name"] == "Hooli"


def test_full_text_of_an_unknown_attribute_is_refused(call_tool, key, acme):
    result = call_tool(key, *get(acme, "companies", "Hooli", full_text=["descripton"]))

    assert result.is_error
    assert "Unknown attribute slug(s): descripton." in tool_text(result)


def test_long_notes_are_cut_and_get_note_gives_them_whole(mcp, key, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    body = "Ada wants a demo. " * 300
    note = {"parent_object": "people", "parent_record_id": ada, "title": "Long", "content": body}

    async def calls(client):
        created = await client.call_tool("create_note", note)
        note_id = created.structured_content["note_id"]
        listing = {"object": "people", "record_id": ada, "limit": 1, "offset": 1}
        return note_id, [
            created,
            await client.call_tool("list_notes", listing),
            await client.call_tool("get_note", {"note_id": note_id}),
            await client.call_tool("get_note", {"note_id": note_id, "full_text": True}),
        ]

    note_id, (created, listed, got, whole) = mcp(key, calls)

    [preview] = ok(listed)["notes"]
    assert preview["content_plaintext"] == cut_text(body, 1000, f"get_note with note_id {note_id}")
    assert preview["content_truncated"] is True
    for data in (ok(created), ok(got)):
        assert data["content_plaintext"] == cut_text(body, 2000, "get_note with full_text=true")
        assert data["content_markdown"] == cut_text(body, 2000, "get_note with full_text=true")
        assert data["content_truncated"] is True
    assert ok(whole)["content_plaintext"] == body
    assert ok(whole)["content_markdown"] == body
    assert ok(whole)["content_truncated"] is False


# --- the text content is the structured content ----------------------------------------------


def test_the_text_is_the_structured_content(run_tools, key, acme):
    [note_id] = acme.notes
    results = run_tools(
        key,
        get(acme, "deals", "Acme expansion"),
        get(acme, "people", "Ada Lovelace", attributes=["name", "phone_numbers"]),
        ("query_records", {"object": "companies"}),
        ("query_list_entries", {"list": "sales_pipeline"}),
        ("list_notes", {"object": "people", "record_id": acme.record_id("people", "Ada Lovelace")}),
        ("get_note", {"note_id": note_id}),
    )

    # Some clients give the model only one of them.
    for result in results:
        [text] = result.content
        assert json.loads(text.text) == ok(result)

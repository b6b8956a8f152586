"""Schema and record tools over MCP, against the fake Attio: what they return, what
Attio receives, and how they answer mistakes."""

import pytest

from mcp_gateway.models import ApiKey, ToolCall
from mcp_gateway.tools import _call
from tests.mcp_gateway.conftest import ok, tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

MISSING = "00000000-0000-4000-8000-000000000000"


# --- schema -------------------------------------------------------------------------------


def test_list_objects_gives_slugs(call_tool, key, fake_attio):
    data = ok(call_tool(key, "list_objects"))

    assert [o["api_slug"] for o in data["objects"]] == ["people", "companies", "deals"]
    people = data["objects"][0]
    assert people["singular_noun"] == "Person"
    assert people["object_id"] == fake_attio.store("acme").objects["people"].id
    assert fake_attio.count("objects.list") == 1


def test_list_attributes_includes_statuses_and_options(call_tool, key, fake_attio):
    data = ok(call_tool(key, "list_attributes", {"target": "objects", "identifier": "deals"}))

    by_slug = {a["api_slug"]: a for a in data["attributes"]}
    assert set(by_slug) == {
        "name",
        "stage",
        "value",
        "owner",
        "associated_company",
        "associated_people",
        "created_by",
    }
    stage = by_slug["stage"]
    assert stage["type"] == "status"
    assert stage["is_required"] is True
    assert [s["title"] for s in stage["statuses"]] == ["Lead", "In Progress", "Won", "Lost"]
    assert by_slug["name"]["options"] is None
    assert by_slug["associated_company"]["allowed_object_ids"] == [
        fake_attio.store("acme").objects["companies"].id
    ]
    assert fake_attio.count("attributes.list") == 1
    assert fake_attio.last("statuses.list").path == "/v2/objects/deals/attributes/stage/statuses"
    # Only status and select attributes cost an extra call.
    assert fake_attio.count("options.list") == 0


def test_list_attributes_of_a_list(call_tool, key, fake_attio):
    arguments = {"target": "lists", "identifier": "sales_pipeline"}
    data = ok(call_tool(key, "list_attributes", arguments))

    by_slug = {a["api_slug"]: a for a in data["attributes"]}
    assert [o["title"] for o in by_slug["priority"]["options"]] == ["Low", "Medium", "High"]
    assert [s["title"] for s in by_slug["stage"]["statuses"]][:2] == ["Prospecting", "Qualified"]
    assert fake_attio.last("options.list").path == (
        "/v2/lists/sales_pipeline/attributes/priority/options"
    )


def test_list_attributes_without_options_is_one_call(call_tool, key, fake_attio):
    arguments = {"target": "objects", "identifier": "companies", "include_options": False}
    data = ok(call_tool(key, "list_attributes", arguments))

    categories = next(a for a in data["attributes"] if a["api_slug"] == "categories")
    assert categories["is_multiselect"] is True
    assert categories["options"] is None
    assert [c.endpoint for c in fake_attio.calls] == ["attributes.list"]


# --- search and query -----------------------------------------------------------------------


def test_search_records_finds_a_person_by_email(call_tool, key, fake_attio, acme):
    data = ok(call_tool(key, "search_records", {"query": "grace@initech"}))

    assert [r["record_text"] for r in data["results"]] == ["Grace Hopper"]
    hit = data["results"][0]
    assert hit["record_id"] == acme.record_id("people", "Grace Hopper")
    assert hit["object_slug"] == "people"
    assert hit["email_addresses"] == ["grace@initech.com"]
    assert fake_attio.last("records.search").json == {
        "query": "grace@initech",
        "objects": ["people", "companies"],
        "limit": 10,
        "request_as": {"type": "workspace"},
    }


def test_query_records_passes_filter_sorts_and_paging(call_tool, key, fake_attio):
    arguments = {
        "object": "deals",
        "filter": {"value": {"currency_value": {"$gte": 10000}}},
        "sorts": [{"direction": "desc", "attribute": "value", "field": "currency_value"}],
        "limit": 1,
        "offset": 0,
    }
    data = ok(call_tool(key, "query_records", arguments))

    assert [r["name"] for r in data["records"]] == ["Acme expansion"]
    assert data["next_offset"] == 1
    assert fake_attio.last("records.query").json == {
        "filter": {"value": {"currency_value": {"$gte": 10000}}},
        "sorts": [{"direction": "desc", "attribute": "value", "field": "currency_value"}],
        "limit": 1,
        "offset": 0,
    }


def test_query_records_last_page_has_no_next_offset(call_tool, key, fake_attio):
    arguments = {"object": "companies", "offset": 1}
    data = ok(call_tool(key, "query_records", arguments))

    assert [r["name"] for r in data["records"]] == ["Initech", "Hooli"]
    assert data["next_offset"] is None
    assert fake_attio.last("records.query").json == {"limit": 25, "offset": 1}


def test_query_records_sends_path_sorts_in_attios_shape(call_tool, key, fake_attio):
    arguments = {
        "object": "people",
        "sorts": [{"direction": "asc", "path": [["people", "company"], ["companies", "name"]]}],
    }
    result = call_tool(key, "query_records", arguments)

    assert fake_attio.last("records.query").json["sorts"] == [
        {"direction": "asc", "path": [["people", "company"], ["companies", "name"]]}
    ]
    # The fake sorts by attribute only; its refusal arrives as Attio's 400.
    assert result.is_error
    assert "fake_attio only supports sorts by attribute" in tool_text(result)


# --- one record -------------------------------------------------------------------------------


def test_get_record_shapes_values(call_tool, key, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    data = ok(call_tool(key, "get_record", {"object": "people", "record_id": ada}))

    assert data["record_id"] == ada
    assert data["name"] == "Ada Lovelace"
    assert data["web_url"].endswith(ada)
    values = data["values"]
    # Each value as what it means: a list for multiselect attributes only.
    assert values["email_addresses"] == ["ada@acme.com"]
    assert values["company"] == {
        "object": "companies",
        "record_id": acme.record_id("companies", "Acme Corp"),
    }
    assert values["job_title"] == "Chief Analyst"
    # Attributes without a value are left out.
    assert all(values.values())


def test_get_record_shows_select_options_by_title(call_tool, key, acme):
    acme_corp = acme.record_id("companies", "Acme Corp")
    data = ok(call_tool(key, "get_record", {"object": "companies", "record_id": acme_corp}))

    assert data["values"]["categories"] == ["B2B", "Enterprise"]


def test_create_record_sends_values_as_lists(call_tool, key, fake_attio, acme):
    values = {
        "name": "Charles Babbage",
        "email_addresses": ["charles@engine.org"],
        "company": {
            "target_object": "companies",
            "target_record_id": acme.record_id("companies", "Hooli"),
        },
        "job_title": None,
    }
    data = ok(call_tool(key, "create_record", {"object": "people", "values": values}))

    assert fake_attio.last("records.create").json == {
        "data": {
            "values": {
                "name": ["Charles Babbage"],
                "email_addresses": ["charles@engine.org"],
                "company": [values["company"]],
                "job_title": [],
            }
        }
    }
    assert data["name"] == "Charles Babbage"
    assert acme.records[data["record_id"]].object_slug == "people"


def test_create_record_conflict_on_unique_value(call_tool, key):
    values = {"name": "Ada Two", "email_addresses": ["ada@acme.com"]}
    result = call_tool(key, "create_record", {"object": "people", "values": values})

    assert result.is_error
    text = tool_text(result)
    assert "HTTP 400" in text
    assert "reference" in text


def test_update_record_appends_to_multiselects(call_tool, key, fake_attio, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    arguments = {
        "object": "people",
        "record_id": ada,
        "values": {"email_addresses": "ada@lovelace.org", "job_title": "Countess"},
    }
    data = ok(call_tool(key, "update_record", arguments))

    call = fake_attio.last("records.update")
    assert (call.method, call.path) == ("PATCH", f"/v2/objects/people/records/{ada}")
    assert call.json == {
        "data": {"values": {"email_addresses": ["ada@lovelace.org"], "job_title": ["Countess"]}}
    }
    assert data["values"]["email_addresses"] == ["ada@acme.com", "ada@lovelace.org"]
    assert data["values"]["job_title"] == "Countess"


def test_update_record_can_overwrite_multiselects(call_tool, key, fake_attio, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    arguments = {
        "object": "people",
        "record_id": ada,
        "values": {"email_addresses": ["ada@lovelace.org"]},
        "overwrite_multiselect": True,
    }
    data = ok(call_tool(key, "update_record", arguments))

    assert fake_attio.last("records.overwrite").method == "PUT"
    assert fake_attio.count("records.update") == 0
    assert data["values"]["email_addresses"] == ["ada@lovelace.org"]


def test_upsert_record_updates_the_matching_record(call_tool, key, fake_attio, acme):
    arguments = {
        "object": "people",
        "matching_attribute": "email_addresses",
        "values": {"email_addresses": ["ada@acme.com"], "job_title": "Countess"},
    }
    data = ok(call_tool(key, "upsert_record", arguments))

    assert data["record_id"] == acme.record_id("people", "Ada Lovelace")
    call = fake_attio.last("records.assert")
    assert (call.method, call.path) == ("PUT", "/v2/objects/people/records")
    assert call.query == {"matching_attribute": "email_addresses"}


def test_upsert_record_creates_when_nothing_matches(call_tool, key, acme):
    before = len(acme.records)
    arguments = {
        "object": "companies",
        "matching_attribute": "domains",
        "values": {"domains": "globex.com", "name": "Globex"},
    }
    data = ok(call_tool(key, "upsert_record", arguments))

    assert len(acme.records) == before + 1
    assert data["name"] == "Globex"


def test_delete_record(mcp, key, fake_attio, acme):
    hooli = acme.record_id("companies", "Hooli")
    arguments = {"object": "companies", "record_id": hooli}

    async def preview_then_confirm(client):
        preview = ok(await client.call_tool("delete_record", arguments))
        confirm = preview["preview"]["fingerprint"]
        return ok(await client.call_tool("delete_record", {**arguments, "confirm": confirm}))

    data = mcp(key, preview_then_confirm)

    assert data == {"deleted": True, "kind": "record", "id": hooli, "preview": None}
    assert hooli not in acme.records
    assert fake_attio.last("records.delete").path == f"/v2/objects/companies/records/{hooli}"


def test_list_record_entries(call_tool, key, fake_attio, acme):
    acme_corp = acme.record_id("companies", "Acme Corp")
    arguments = {"object": "companies", "record_id": acme_corp, "limit": 5}
    data = ok(call_tool(key, "list_record_entries", arguments))

    assert [e["list_api_slug"] for e in data["entries"]] == ["sales_pipeline"]
    assert data["entries"][0]["entry_id"] in acme.entries
    assert data["next_offset"] is None
    assert fake_attio.last("records.entries").query == {"limit": "5", "offset": "0"}


# --- unknown attribute slugs ------------------------------------------------------------------

PEOPLE_SLUGS = "company, created_by, email_addresses, job_title, name, phone_numbers"


def test_unknown_slug_on_create_lists_the_valid_ones(call_tool, key, fake_attio):
    values = {"nmae": "Ada"}
    result = call_tool(key, "create_record", {"object": "people", "values": values})

    assert result.is_error
    text = tool_text(result)
    assert 'Cannot find attribute with slug/ID "nmae".' in text
    assert f"The object `people` has these attribute slugs: {PEOPLE_SLUGS}." in text
    assert "code: value_not_found" in text
    assert "HTTP 400" in text
    assert fake_attio.count("records.create") == 1
    # The audit keeps Attio's answer to the write, not to the slug look-up.
    call = ToolCall.objects.get()
    assert (call.ok, call.attio_status, call.error_code) == (False, 400, "value_not_found")


def test_unknown_slug_in_a_filter_lists_the_valid_ones(call_tool, key):
    arguments = {"object": "people", "filter": {"emails": "ada@acme.com"}}
    result = call_tool(key, "query_records", arguments)

    assert result.is_error
    assert f"has these attribute slugs: {PEOPLE_SLUGS}." in tool_text(result)


def test_unknown_matching_attribute_lists_the_valid_ones(call_tool, key):
    arguments = {
        "object": "people",
        "matching_attribute": "email",
        "values": {"email_addresses": ["x@y.org"]},
    }
    result = call_tool(key, "upsert_record", arguments)

    assert result.is_error
    assert f"has these attribute slugs: {PEOPLE_SLUGS}." in tool_text(result)


def test_unknown_list_attribute_lists_the_list_slugs(call_tool, key, acme):
    arguments = {
        "list": "sales_pipeline",
        "object": "companies",
        "record_id": acme.record_id("companies", "Hooli"),
        "entry_values": {"stag": "Qualified"},
    }
    result = call_tool(key, "add_to_list", arguments)

    assert result.is_error
    assert "The list `sales_pipeline` has these attribute slugs: priority, stage." in tool_text(
        result
    )


def test_attribute_slugs_are_cached_per_connection(run_tools, key, fake_attio, acme):
    bad = {"object": "people", "values": {"nmae": "Ada"}}
    first, second = run_tools(key, ("create_record", bad), ("create_record", bad))

    assert PEOPLE_SLUGS in tool_text(first)
    assert PEOPLE_SLUGS in tool_text(second)
    assert fake_attio.count("attributes.list") == 1
    assert set(_call.ATTRIBUTE_SLUGS) == {ApiKey.objects.get().connection_id}


def test_slug_cache_of_one_connection_never_answers_for_another(
    call_tool, key, fake_attio, make_user, make_connection
):
    # Another user's connection to the same workspace sees an attribute this one does
    # not (its scopes may differ): its cached slugs are not offered here.
    other = make_connection(make_user("dora"), "acme")
    _call.remember_slugs(other.pk, "objects", "people", ["only_for_dora"])

    result = call_tool(key, "create_record", {"object": "people", "values": {"nmae": "Ada"}})

    assert PEOPLE_SLUGS in tool_text(result)
    assert "only_for_dora" not in tool_text(result)
    assert fake_attio.count("attributes.list") == 1


def test_slug_cache_expires(call_tool, key, fake_attio, acme, monkeypatch):
    monkeypatch.setattr(_call, "ATTRIBUTE_SLUGS_SECONDS", 0.0)
    _call.remember_slugs(ApiKey.objects.get().connection_id, "objects", "people", ["stale"])

    result = call_tool(key, "create_record", {"object": "people", "values": {"nmae": "Ada"}})

    assert PEOPLE_SLUGS in tool_text(result)
    assert fake_attio.count("attributes.list") == 1


# --- arguments refused before Attio is called --------------------------------------------------


BAD_ARGUMENTS = [
    ("get_record", {"object": "people", "record_id": "not-a-uuid"}, "record_id"),
    ("get_record", {"object": "../lists", "record_id": MISSING}, "object"),
    ("get_record", {"object": "people%2F..", "record_id": MISSING}, "object"),
    ("get_record", {"object": "people"}, "record_id"),
    ("query_records", {"object": "people", "limit": 501}, "limit"),
    ("query_records", {"object": "people", "limit": 0}, "limit"),
    ("query_records", {"object": "people", "offset": -1}, "offset"),
    ("query_records", {"object": "people", "filter": "name = Ada"}, "filter"),
    (
        "query_records",
        {"object": "people", "sorts": [{"direction": "up", "attribute": "name"}]},
        "direction",
    ),
    (
        "query_records",
        {
            "object": "people",
            "sorts": [{"direction": "asc", "attribute": "name", "path": [["a", "b"]]}],
        },
        "exactly one of `attribute` or `path`",
    ),
    ("search_records", {"query": ""}, "query"),
    ("search_records", {"query": "ada", "limit": 26}, "limit"),
    ("search_records", {"query": "ada", "objects": []}, "objects"),
    ("create_record", {"object": "people", "values": {}}, "values"),
    ("create_record", {"object": "people", "values": {"bad slug": "x"}}, "values"),
    ("upsert_record", {"object": "people", "values": {"name": "x"}}, "matching_attribute"),
    ("list_record_entries", {"object": "people", "record_id": MISSING, "limit": 1000}, "limit"),
    ("list_attributes", {"target": "records", "identifier": "people"}, "target"),
]


def test_bad_arguments_are_refused_before_attio(run_tools, key, fake_attio):
    results = run_tools(key, *[(name, arguments) for name, arguments, _ in BAD_ARGUMENTS])

    for (name, arguments, complaint), result in zip(BAD_ARGUMENTS, results, strict=True):
        text = tool_text(result)
        assert result.is_error, (name, arguments)
        assert f"Error executing tool {name}" in text, (name, arguments)
        assert complaint in text, (name, arguments, text)
    assert fake_attio.calls == []
    rows = ToolCall.objects.order_by("pk")
    assert [(r.tool, r.ok, r.attio_status) for r in rows] == [
        (name, False, None) for name, _, _ in BAD_ARGUMENTS
    ]

"""Tests for the fake Attio's REST API v2 (tests/fake_attio/rest.py); no database.

Every answer is checked against Attio's OpenAPI document with spec.validate_response
(the strict fake checks its own answers too, and raises if one breaks the document).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.fake_attio import FakeAttio, rest, spec
from tests.fake_attio.model import seed_id

API = "https://api.attio.com"
MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed id nothing has


@pytest.fixture
def fake() -> FakeAttio:
    return FakeAttio()


def client_for(fake: FakeAttio, workspace: str | None = None, scopes: str | None = None):
    token = fake.add_api_key(workspace, scopes=scopes)
    return httpx.Client(
        transport=fake.transport(),
        base_url=API,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def api(fake: FakeAttio):
    with client_for(fake) as client:
        yield client


def ok(response: httpx.Response, status: int = 200):
    """Assert the status, validate the body against the spec, return the JSON."""
    assert response.status_code == status, response.text
    body = response.json()
    spec.validate_response(response.request.method, response.request.url.path, status, body)
    return body


def error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    body = ok(response, status)
    assert set(body) - {"statusCode"} == {"status_code", "type", "code", "message"}
    assert body["status_code"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def names(records: list[dict]) -> list[str]:
    out = []
    for record in records:
        [name] = record["values"]["name"]
        out.append(name.get("full_name") or name["value"])
    return out


# --- objects and attributes ---------------------------------------------------------


def test_objects_list_and_get(fake, api):
    body = ok(api.get("/v2/objects"))
    assert [o["api_slug"] for o in body["data"]] == ["people", "companies", "deals"]
    people = ok(api.get("/v2/objects/people"))["data"]
    assert people["singular_noun"] == "Person"
    assert people["id"]["object_id"] == seed_id("acme", "object", "people")
    by_id = ok(api.get(f"/v2/objects/{people['id']['object_id']}"))["data"]
    assert by_id == people
    missing = error(api.get("/v2/objects/spaceships"), 404, "not_found")
    assert missing == {
        "status_code": 404,
        "type": "invalid_request_error",
        "code": "not_found",
        "message": 'Object with slug/ID "spaceships" was not found.',
    }
    assert [c.endpoint for c in fake.calls] == ["objects.list", "objects.get"] + ["objects.get"] * 2


def test_attributes_of_objects_and_lists(api):
    people = ok(api.get("/v2/objects/people/attributes"))["data"]
    slugs = [a["api_slug"] for a in people]
    assert slugs[:5] == ["name", "email_addresses", "phone_numbers", "company", "job_title"]
    emails = next(a for a in people if a["api_slug"] == "email_addresses")
    assert emails["type"] == "email-address" and emails["is_unique"]
    assert emails["is_multiselect"]
    page = ok(api.get("/v2/objects/people/attributes", params={"limit": 2, "offset": 1}))
    assert [a["api_slug"] for a in page["data"]] == slugs[1:3]

    stage = ok(api.get("/v2/objects/deals/attributes/stage"))["data"]
    assert stage["type"] == "status" and stage["is_required"]
    company = ok(api.get("/v2/objects/people/attributes/company"))["data"]
    assert company["config"]["record_reference"]["allowed_object_ids"] == [
        seed_id("acme", "object", "companies")
    ]
    by_id = ok(api.get(f"/v2/objects/people/attributes/{company['id']['attribute_id']}"))
    assert by_id["data"] == company

    lists = ok(api.get("/v2/lists/sales_pipeline/attributes"))["data"]
    assert [a["api_slug"] for a in lists] == ["stage", "priority"]

    error(api.get("/v2/objects/people/attributes/shoe_size"), 404, "not_found")
    error(api.get("/v2/objects/spaceships/attributes"), 404, "not_found")
    error(api.get("/v2/lists/nope/attributes"), 404, "not_found")


def test_select_options_and_statuses(fake, api):
    options = ok(api.get("/v2/objects/companies/attributes/categories/options"))["data"]
    assert [o["title"] for o in options] == ["B2B", "B2C", "SaaS", "Enterprise", "E-commerce"]
    statuses = ok(api.get("/v2/objects/deals/attributes/stage/statuses"))["data"]
    assert [s["title"] for s in statuses] == ["Lead", "In Progress", "Won", "Lost"]
    assert next(s for s in statuses if s["title"] == "Won")["celebration_enabled"]
    pipeline = ok(api.get("/v2/lists/sales_pipeline/attributes/stage/statuses"))["data"]
    assert pipeline[0]["title"] == "Prospecting"
    priority = ok(api.get("/v2/lists/sales_pipeline/attributes/priority/options"))["data"]
    assert [o["title"] for o in priority] == ["Low", "Medium", "High"]
    error(api.get("/v2/objects/people/attributes/name/options"), 404, "not_found")
    error(api.get("/v2/objects/companies/attributes/name/statuses"), 404, "not_found")
    assert fake.count("options.list") == 3 and fake.count("statuses.list") == 3


# --- records --------------------------------------------------------------------------


def test_record_round_trip(fake, api):
    created = ok(
        api.post(
            "/v2/objects/companies/records",
            json={
                "data": {
                    "values": {
                        "name": ["Globex"],
                        "domains": ["https://www.Globex.com/about"],
                        "categories": ["SaaS"],
                    }
                }
            },
        )
    )["data"]
    record_id = created["id"]["record_id"]
    values = created["values"]
    assert values["name"][0]["value"] == "Globex"
    assert values["domains"][0]["domain"] == "globex.com"
    assert values["categories"][0]["option"]["title"] == "SaaS"
    assert values["description"] == []
    assert values["created_by"][0]["referenced_actor_type"] == "api-token"
    assert created["web_url"].endswith(f"/acme/company/{record_id}")
    assert values["name"][0]["active_until"] is None

    fetched = ok(api.get(f"/v2/objects/companies/records/{record_id}"))["data"]
    assert fetched == created

    # PATCH appends to multiselect attributes and replaces single values.
    patched = ok(
        api.patch(
            f"/v2/objects/companies/records/{record_id}",
            json={
                "data": {
                    "values": {
                        "categories": ["B2B", "SaaS"],
                        "description": ["Globex makes gadgets."],
                    }
                }
            },
        )
    )["data"]["values"]
    assert [v["option"]["title"] for v in patched["categories"]] == ["SaaS", "B2B"]
    assert patched["description"][0]["value"] == "Globex makes gadgets."

    # PUT overwrites multiselect attributes.
    put = ok(
        api.put(
            f"/v2/objects/companies/records/{record_id}",
            json={"data": {"values": {"categories": ["Enterprise"]}}},
        )
    )["data"]["values"]
    assert [v["option"]["title"] for v in put["categories"]] == ["Enterprise"]

    found = ok(
        api.post(
            "/v2/objects/companies/records/query",
            json={"filter": {"domains": "globex.com"}},
        )
    )["data"]
    assert [r["id"]["record_id"] for r in found] == [record_id]

    assert ok(api.delete(f"/v2/objects/companies/records/{record_id}")) == {}
    error(api.get(f"/v2/objects/companies/records/{record_id}"), 404, "not_found")
    error(api.delete(f"/v2/objects/companies/records/{record_id}"), 404, "not_found")
    assert [c.endpoint for c in fake.calls] == [
        "records.create",
        "records.get",
        "records.update",
        "records.overwrite",
        "records.query",
        "records.delete",
        "records.get",
        "records.delete",
    ]


def test_record_get_errors(fake, api):
    ada = fake.record_id("people", "Ada Lovelace")
    error(api.get(f"/v2/objects/people/records/{MISSING}"), 404, "not_found")
    # A real record, asked for under the wrong object.
    error(api.get(f"/v2/objects/companies/records/{ada}"), 404, "not_found")
    error(api.get(f"/v2/objects/spaceships/records/{ada}"), 404, "not_found")
    # Not a UUID: the spec check refuses it before the handler.
    assert api.get("/v2/objects/people/records/not-a-uuid").status_code == 400


def test_unknown_attribute_is_a_400(api):
    body = error(
        api.post(
            "/v2/objects/companies/records",
            json={"data": {"values": {"name": ["X"], "xyz": ["1"]}}},
        ),
        400,
    )
    assert body == {
        "status_code": 400,
        "type": "invalid_request_error",
        "code": "value_not_found",
        "message": 'Cannot find attribute with slug/ID "xyz".',
    }
    # PATCH may only answer missing_value, per the document.
    patch = error(
        api.patch(
            f"/v2/objects/companies/records/{seed_id('acme', 'record', 'companies', 'hooli')}",
            json={"data": {"values": {"xyz": ["1"]}}},
        ),
        400,
        "missing_value",
    )
    assert patch["message"] == 'Cannot find attribute with slug/ID "xyz".'


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": [5], "stage": ["Lead"]}, 'attribute with slug "name": expected a string'),
        ({"name": ["D"], "stage": ["Nope"]}, 'Cannot find status with title or ID "Nope"'),
        ({"name": ["D"], "stage": ["Lead"], "value": ["lots"]}, 'slug "value"'),
        ({"name": ["D"], "stage": ["Lead", "Won"]}, "takes a single value, but 2"),
        ({"name": ["D"]}, 'Required value for attribute with slug "stage" was not provided.'),
        (
            {
                "name": ["D"],
                "stage": ["Lead"],
                "associated_company": [{"target_object": "companies", "target_record_id": MISSING}],
            },  # noqa: E501
            f'Cannot find record with ID "{MISSING}"',
        ),
        (
            {
                "name": ["D"],
                "stage": ["Lead"],
                "created_by": [{"workspace_member_email_address": "x"}],
            },  # noqa: E501
            'Attribute with slug "created_by" is not writable.',
        ),
    ],
)
def test_invalid_values_are_400s(api, values, message):
    body = error(api.post("/v2/objects/deals/records", json={"data": {"values": values}}), 400)
    assert message in body["message"]
    assert body["type"] == "invalid_request_error"


def test_unique_attribute_conflict(api):
    body = error(
        api.post(
            "/v2/objects/people/records",
            json={"data": {"values": {"email_addresses": ["ADA@acme.com"]}}},
        ),
        400,
    )
    assert "email_addresses" in body["message"] and "already exists" in body["message"]


def test_write_input_shapes(fake, api):
    acme = fake.record_id("companies", "Acme Corp")
    alice = fake.store().member("alice")
    created = ok(
        api.post(
            "/v2/objects/people/records",
            json={
                "data": {
                    "values": {
                        "name": [{"first_name": "Katherine", "last_name": "Johnson"}],
                        "email_addresses": [{"email_address": "kj@acme.com"}, "k.j@acme.com"],
                        "phone_numbers": [
                            {"original_phone_number": "020 7946 0000", "country_code": "GB"}
                        ],  # noqa: E501
                        "company": [
                            {"target_object": "companies", "domains": [{"domain": "acme.com"}]}
                        ],  # noqa: E501
                        "job_title": [{"value": "Mathematician"}],
                    }
                }
            },
        )
    )["data"]["values"]
    assert created["name"][0]["full_name"] == "Katherine Johnson"
    assert [v["email_address"] for v in created["email_addresses"]] == [
        "kj@acme.com",
        "k.j@acme.com",
    ]
    assert created["phone_numbers"][0]["phone_number"] == "+442079460000"
    assert created["company"][0]["target_record_id"] == acme
    deal = ok(
        api.post(
            "/v2/objects/deals/records",
            json={
                "data": {
                    "values": {
                        "name": ["Big one"],
                        "stage": [{"status": "lead"}],
                        "value": [{"currency_value": 1000, "currency_code": "EUR"}],
                        "owner": [{"workspace_member_email_address": alice.email_address}],
                        "associated_company": [acme],
                    }
                }
            },
        )
    )["data"]["values"]
    assert deal["stage"][0]["status"]["title"] == "Lead"
    assert deal["value"][0] == {**deal["value"][0], "currency_value": 1000, "currency_code": "EUR"}
    assert deal["owner"][0]["referenced_actor_id"] == alice.id
    assert deal["associated_company"][0]["target_object"] == "companies"


def test_bare_values_need_non_strict_mode():
    # Attio accepts "name": "Acme", but its document says every value is an array.
    body = {"data": {"values": {"name": "Acme Two", "domains": "acme2.com"}}}
    strict = FakeAttio()
    with client_for(strict) as api:
        refused = api.post("/v2/objects/companies/records", json=body)
        assert refused.status_code == 400 and "body.data.values.name" in refused.text
    loose = FakeAttio(strict_spec=False)
    with client_for(loose) as api:
        record = api.post("/v2/objects/companies/records", json=body).json()["data"]
        assert record["values"]["domains"][0]["domain"] == "acme2.com"


def test_query_filters_sorts_and_pages(fake, api):
    def query(**body):
        return names(ok(api.post("/v2/objects/people/records/query", json=body))["data"])

    assert query() == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    assert query(filter={"name": "Ada Lovelace"}) == ["Ada Lovelace"]
    assert query(filter={"email_addresses": "grace@initech.com"}) == ["Grace Hopper"]
    assert query(filter={"name": {"$contains": "TUR"}}) == ["Alan Turing"]
    assert query(filter={"name": {"full_name": {"$starts_with": "gr"}}}) == ["Grace Hopper"]
    assert query(filter={"email_addresses": {"email_domain": {"$eq": "hooli.com"}}}) == [
        "Alan Turing"
    ]
    assert query(filter={"$or": [{"job_title": "Researcher"}, {"name": "Ada Lovelace"}]}) == [
        "Ada Lovelace",
        "Alan Turing",
    ]
    assert query(filter={"$not": {"phone_numbers": {"$not_empty": True}}}) == [
        "Grace Hopper",
        "Alan Turing",
    ]
    acme = fake.record_id("companies", "Acme Corp")
    assert query(filter={"company": {"target_record_id": {"$eq": acme}}}) == ["Ada Lovelace"]
    ada = fake.record_id("people", "Ada Lovelace")
    assert query(filter={"record_id": ada}) == ["Ada Lovelace"]
    # created_at filters and sorts, though it is not among the values.
    assert query(filter={"created_at": {"$gt": "2025-01-01"}}) == []
    assert query(sorts=[{"attribute": "created_at", "direction": "desc"}]) == [
        "Alan Turing",
        "Grace Hopper",
        "Ada Lovelace",
    ]
    assert query(sorts=[{"attribute": "name", "field": "last_name", "direction": "desc"}]) == [
        "Alan Turing",
        "Ada Lovelace",
        "Grace Hopper",
    ]
    assert query(sorts=[{"attribute": "name", "direction": "asc"}], limit=1, offset=1) == [
        "Alan Turing"
    ]

    deals = ok(
        api.post(
            "/v2/objects/deals/records/query",
            json={
                "filter": {"$and": [{"stage": {"$in": ["Lead", "In Progress"]}}]},
                "sorts": [{"attribute": "value", "direction": "desc"}],
            },
        )
    )["data"]
    assert names(deals) == ["Acme expansion", "Initech renewal"]
    big = ok(
        api.post(
            "/v2/objects/deals/records/query",
            json={"filter": {"value": {"currency_value": {"$gte": 10000}}, "stage": "Lead"}},
        )
    )["data"]
    assert names(big) == ["Initech renewal"]

    for bad in ({"shoe_size": 42}, {"name": {"$like": "A%"}}, {"$xor": []}):
        body = error(
            api.post("/v2/objects/people/records/query", json={"filter": bad}),
            400,
            "filter_error",
        )
        assert body["message"]
    error(api.post("/v2/objects/spaceships/records/query", json={}), 404, "not_found")


def test_assert_updates_or_creates(fake, api):
    acme = fake.record_id("companies", "Acme Corp")
    url = "/v2/objects/companies/records"
    updated = ok(
        api.put(
            url,
            params={"matching_attribute": "domains"},
            json={"data": {"values": {"domains": ["acme.com", "acme.io"], "categories": ["SaaS"]}}},
        )
    )["data"]
    assert updated["id"]["record_id"] == acme
    # The matching attribute is appended to, other multiselects are replaced.
    assert [v["domain"] for v in updated["values"]["domains"]] == ["acme.com", "acme.io"]
    assert [v["option"]["title"] for v in updated["values"]["categories"]] == ["SaaS"]
    assert updated["values"]["name"][0]["value"] == "Acme Corp"

    created = ok(
        api.put(
            url,
            params={"matching_attribute": "domains"},
            json={"data": {"values": {"domains": ["wayne.example"], "name": ["Wayne"]}}},
        )
    )["data"]
    assert created["id"]["record_id"] not in (acme,)
    assert fake.record_id("companies", "Wayne") == created["id"]["record_id"]
    assert fake.count("records.assert") == 2

    several = error(
        api.put(
            url,
            params={"matching_attribute": "domains"},
            json={"data": {"values": {"domains": ["acme.io", "wayne.example"]}}},
        ),
        400,
    )
    assert "2 records match" in several["message"]
    not_unique = error(
        api.put(
            url,
            params={"matching_attribute": "name"},
            json={"data": {"values": {"name": ["Acme Corp"]}}},
        ),
        400,
    )
    assert "not unique" in not_unique["message"]
    unknown = error(
        api.put(
            url,
            params={"matching_attribute": "xyz"},
            json={"data": {"values": {"name": ["A"]}}},
        ),
        400,
    )
    assert unknown["message"] == 'Cannot find attribute with slug/ID "xyz".'


def test_record_entries_and_delete_cascade(fake, api):
    acme = fake.record_id("companies", "Acme Corp")
    entries = ok(api.get(f"/v2/objects/companies/records/{acme}/entries"))["data"]
    assert [(e["list_api_slug"], e["entry_id"]) for e in entries] == [
        ("sales_pipeline", seed_id("acme", "entry", "sales_pipeline", "acme-corp"))
    ]
    error(api.get(f"/v2/objects/companies/records/{MISSING}/entries"), 404, "not_found")
    api.delete(f"/v2/objects/companies/records/{acme}")
    store = fake.store()
    assert store.entries_of("sales_pipeline", acme) == []
    assert not any(t.record_id == acme for t in store.threads.values())
    ada = store.record_named("people", "Ada Lovelace")
    assert ada.values["company"] == []


def test_records_search(fake, api):
    def search(query: str, objects: list[str], **extra):
        body = {"query": query, "objects": objects, "request_as": {"type": "workspace"}}
        return ok(api.post("/v2/objects/records/search", json={**body, **extra}))["data"]

    [ada] = search("lovelace", ["people"])
    assert ada["record_text"] == "Ada Lovelace" and ada["email_addresses"] == ["ada@acme.com"]
    assert [r["record_text"] for r in search("acme", ["people", "companies"])] == [
        "Ada Lovelace",
        "Acme Corp",
    ]
    assert search("hooli.com", ["companies"])[0]["domains"] == ["hooli.com"]
    assert len(search("", ["people", "companies", "deals"], limit=4)) == 4
    member = fake.workspace().member_id
    as_member = {"type": "workspace-member", "workspace_member_id": member}
    assert search("grace", ["people"], request_as=as_member)[0]["object_slug"] == "people"
    body = error(
        api.post(
            "/v2/objects/records/search",
            json={"query": "x", "objects": ["spaceships"], "request_as": {"type": "workspace"}},
        ),
        400,
        "value_not_found",
    )
    assert "spaceships" in body["message"]


# --- lists and entries ------------------------------------------------------------------


def test_lists(api):
    [pipeline] = ok(api.get("/v2/lists"))["data"]
    assert pipeline["api_slug"] == "sales_pipeline" and pipeline["name"] == "Sales pipeline"
    assert pipeline["parent_object"] == ["companies"]
    assert ok(api.get(f"/v2/lists/{pipeline['id']['list_id']}"))["data"] == pipeline
    error(api.get("/v2/lists/nope"), 404, "not_found")


def test_entries_round_trip(fake, api):
    hooli = fake.record_id("companies", "Hooli")
    url = "/v2/lists/sales_pipeline/entries"
    entries = ok(api.post(f"{url}/query", json={}))["data"]
    assert len(entries) == 2
    initech = fake.record_id("companies", "Initech")
    by_parent = ok(api.post(f"{url}/query", json={"filter": {"parent_record_id": initech}}))
    assert [e["parent_record_id"] for e in by_parent["data"]] == [initech]
    qualified = ok(api.post(f"{url}/query", json={"filter": {"stage": "Qualified"}}))["data"]
    assert [e["parent_record_id"] for e in qualified] == [fake.record_id("companies", "Acme Corp")]
    by_priority = ok(
        api.post(f"{url}/query", json={"sorts": [{"attribute": "priority", "direction": "asc"}]})
    )["data"]
    assert [e["entry_values"]["priority"][0]["option"]["title"] for e in by_priority] == [
        "High",
        "Medium",
    ]

    created = ok(
        api.post(
            url,
            json={
                "data": {
                    "parent_record_id": hooli,
                    "parent_object": "companies",
                    "entry_values": {"stage": ["Proposal"]},
                }
            },
        )
    )["data"]
    entry_id = created["id"]["entry_id"]
    assert created["entry_values"]["stage"][0]["status"]["title"] == "Proposal"
    assert created["entry_values"]["priority"] == []
    assert ok(api.get(f"{url}/{entry_id}"))["data"] == created

    patched = ok(
        api.patch(f"{url}/{entry_id}", json={"data": {"entry_values": {"priority": ["Low"]}}})
    )["data"]
    assert patched["entry_values"]["priority"][0]["option"]["title"] == "Low"
    assert patched["entry_values"]["stage"][0]["status"]["title"] == "Proposal"
    put = ok(
        api.put(f"{url}/{entry_id}", json={"data": {"entry_values": {"stage": ["Closed won"]}}})
    )["data"]
    assert put["entry_values"]["stage"][0]["status"]["title"] == "Closed won"

    asserted = ok(
        api.put(
            url,
            json={
                "data": {
                    "parent_record_id": hooli,
                    "parent_object": "companies",
                    "entry_values": {"priority": ["High"]},
                }
            },
        )
    )["data"]
    assert asserted["id"]["entry_id"] == entry_id

    assert ok(api.delete(f"{url}/{entry_id}")) == {}
    error(api.get(f"{url}/{entry_id}"), 404, "not_found")
    error(api.patch(f"{url}/{MISSING}", json={"data": {"entry_values": {}}}), 404, "not_found")
    assert [c.endpoint for c in fake.calls][4:] == [
        "entries.create",
        "entries.get",
        "entries.update",
        "entries.overwrite",
        "entries.assert",
        "entries.delete",
        "entries.get",
        "entries.update",
    ]


def test_entry_errors(fake, api):
    url = "/v2/lists/sales_pipeline/entries"
    ada = fake.record_id("people", "Ada Lovelace")
    wrong_object = error(
        api.post(
            url,
            json={"data": {"parent_record_id": ada, "parent_object": "people", "entry_values": {}}},
        ),
        400,
        "value_not_found",
    )
    assert "holds records of companies" in wrong_object["message"]
    error(
        api.post(
            url,
            json={
                "data": {
                    "parent_record_id": MISSING,
                    "parent_object": "companies",
                    "entry_values": {},
                }
            },
        ),
        400,
        "value_not_found",
    )
    unknown = error(
        api.post(
            url,
            json={
                "data": {
                    "parent_record_id": fake.record_id("companies", "Hooli"),
                    "parent_object": "companies",
                    "entry_values": {"size": ["big"]},
                }
            },
        ),
        400,
    )
    assert unknown["message"] == 'Cannot find attribute with slug/ID "size".'
    error(api.post("/v2/lists/nope/entries/query", json={}), 404, "not_found")
    error(
        api.post(f"{url}/query", json={"filter": {"size": "big"}}),
        400,
        "filter_error",
    )


# --- members, notes, tasks ------------------------------------------------------------------


def test_workspace_members(fake, api):
    members = ok(api.get("/v2/workspace_members"))["data"]
    assert [(m["first_name"], m["access_level"]) for m in members] == [
        ("Alice", "admin"),
        ("Bob", "member"),
    ]
    alice_id = fake.workspace().member_id
    assert members[0]["id"]["workspace_member_id"] == alice_id
    assert ok(api.get(f"/v2/workspace_members/{alice_id}"))["data"] == members[0]
    error(api.get(f"/v2/workspace_members/{MISSING}"), 404, "not_found")
    assert fake.count("members.list") == 1 and fake.count("members.get") == 2


def test_notes(fake, api):
    ada = fake.record_id("people", "Ada Lovelace")
    [seeded] = ok(api.get("/v2/notes"))["data"]
    assert seeded["title"] == "Intro call" and seeded["parent_record_id"] == ada
    created = ok(
        api.post(
            "/v2/notes",
            json={
                "data": {
                    "parent_object": "people",
                    "parent_record_id": ada,
                    "title": "Demo",
                    "format": "markdown",
                    "content": "# Agenda\n- **Pricing**\n- Timeline",
                }
            },
        )
    )["data"]
    assert created["content_markdown"] == "# Agenda\n- **Pricing**\n- Timeline"
    assert created["content_plaintext"] == "Agenda\nPricing\nTimeline"
    note_id = created["id"]["note_id"]
    assert ok(api.get(f"/v2/notes/{note_id}"))["data"] == created

    grace = fake.record_id("people", "Grace Hopper")
    plain = ok(
        api.post(
            "/v2/notes",
            json={
                "data": {
                    "parent_object": "people",
                    "parent_record_id": grace,
                    "title": "Hi",
                    "format": "plaintext",
                    "content": "Plain *text*",
                }
            },
        )
    )["data"]
    assert plain["content_plaintext"] == plain["content_markdown"] == "Plain *text*"

    def titles(**params):
        return [n["title"] for n in ok(api.get("/v2/notes", params=params))["data"]]

    assert titles() == ["Intro call", "Demo", "Hi"]
    assert titles(parent_object="people", parent_record_id=ada) == ["Intro call", "Demo"]
    assert titles(limit=1, offset=2) == ["Hi"]
    assert titles(parent_object="companies") == []
    error(api.get("/v2/notes", params={"parent_object": "spaceships"}), 404, "not_found")

    assert ok(api.delete(f"/v2/notes/{note_id}")) == {}
    error(api.get(f"/v2/notes/{note_id}"), 404, "not_found")
    error(api.delete(f"/v2/notes/{note_id}"), 404, "not_found")
    missing_parent = {
        "parent_object": "people",
        "parent_record_id": MISSING,
        "title": "x",
        "format": "plaintext",
        "content": "x",
    }
    error(api.post("/v2/notes", json={"data": missing_parent}), 404, "not_found")


def test_tasks(fake, api):
    store = fake.store()
    ada = fake.record_id("people", "Ada Lovelace")
    bob = store.member("bob")
    [seeded] = ok(api.get("/v2/tasks"))["data"]
    assert seeded["content_plaintext"] == "Follow up with Ada"
    assert seeded["assignees"][0]["referenced_actor_id"] == bob.id

    created = ok(
        api.post(
            "/v2/tasks",
            json={
                "data": {
                    "content": "Send the contract",
                    "format": "plaintext",
                    "deadline_at": "2030-01-02T10:00:00Z",
                    "is_completed": False,
                    # The document's other form (match by a unique attribute) has a
                    # literal "[slug_or_id_of_matching_attribute]" key as required,
                    # so only non-strict mode can send it.
                    "linked_records": [
                        {
                            "target_object": "companies",
                            "target_record_id": fake.record_id("companies", "Hooli"),
                        }
                    ],
                    "assignees": [{"workspace_member_email_address": "alice@acme.test"}],
                }
            },
        )
    )["data"]
    task_id = created["id"]["task_id"]
    assert created["deadline_at"] == "2030-01-02T10:00:00.000000000Z"
    assert created["linked_records"] == [
        {
            "target_object_id": seed_id("acme", "object", "companies"),
            "target_record_id": fake.record_id("companies", "Hooli"),
        }
    ]
    assert ok(api.get(f"/v2/tasks/{task_id}"))["data"] == created

    done = ok(
        api.patch(
            f"/v2/tasks/{task_id}",
            json={"data": {"is_completed": True, "deadline_at": None, "assignees": []}},
        )
    )["data"]
    assert done["is_completed"] is True and done["deadline_at"] is None
    assert done["assignees"] == [] and done["content_plaintext"] == "Send the contract"

    def contents(**params):
        tasks = ok(api.get("/v2/tasks", params=params))["data"]
        return [t["content_plaintext"] for t in tasks]

    assert contents() == ["Follow up with Ada", "Send the contract"]
    assert contents(sort="created_at:desc") == ["Send the contract", "Follow up with Ada"]
    assert contents(is_completed="true") == ["Send the contract"]
    assert contents(linked_object="people", linked_record_id=ada) == ["Follow up with Ada"]
    assert contents(assignee=bob.email_address) == ["Follow up with Ada"]
    assert contents(assignee="null") == ["Send the contract"]
    assert contents(limit=1, offset=1) == ["Send the contract"]

    assert ok(api.delete(f"/v2/tasks/{task_id}")) == {}
    error(api.get(f"/v2/tasks/{task_id}"), 404, "not_found")
    error(api.patch(f"/v2/tasks/{MISSING}", json={"data": {}}), 404, "not_found")
    task = {
        "content": "x",
        "format": "plaintext",
        "deadline_at": None,
        "is_completed": False,
        "linked_records": [{"target_object": "people", "target_record_id": MISSING}],
        "assignees": [],
    }
    error(api.post("/v2/tasks", json={"data": task}), 404, "not_found")
    bad_date = {**task, "linked_records": [], "deadline_at": "next tuesday"}
    error(api.post("/v2/tasks", json={"data": bad_date}), 400, "validation_type")
    unknown_member = {
        **task,
        "linked_records": [],
        "assignees": [{"workspace_member_email_address": "nobody@acme.test"}],
    }
    error(api.post("/v2/tasks", json={"data": unknown_member}), 404, "not_found")


# --- threads and comments ----------------------------------------------------------------


def test_threads_and_comments(fake, api):
    acme = fake.record_id("companies", "Acme Corp")
    alice = fake.workspace().member_id
    author = {"type": "workspace-member", "id": alice}
    [thread] = ok(api.get("/v2/threads", params={"object": "companies", "record_id": acme}))["data"]
    assert thread["id"]["thread_id"] == seed_id("acme", "thread", "acme-corp")
    assert thread["comments"][0]["author"] == author
    assert ok(api.get(f"/v2/threads/{thread['id']['thread_id']}"))["data"] == thread

    reply = ok(
        api.post(
            "/v2/comments",
            json={
                "data": {
                    "format": "plaintext",
                    "content": "Agreed.",
                    "author": author,
                    "thread_id": thread["id"]["thread_id"],
                }
            },
        )
    )["data"]
    assert reply["record"]["record_id"] == acme and reply["entry"] is None
    assert ok(api.get(f"/v2/comments/{reply['id']['comment_id']}"))["data"] == reply

    entry_id = seed_id("acme", "entry", "sales_pipeline", "initech")
    on_entry = ok(
        api.post(
            "/v2/comments",
            json={
                "data": {
                    "format": "plaintext",
                    "content": "Chase them.",
                    "author": author,
                    "entry": {"list": "sales_pipeline", "entry_id": entry_id},
                }
            },
        )
    )["data"]
    assert on_entry["entry"]["entry_id"] == entry_id
    assert on_entry["record"]["record_id"] == fake.record_id("companies", "Initech")
    listed = ok(api.get("/v2/threads", params={"list": "sales_pipeline", "entry_id": entry_id}))
    assert [t["comments"][0]["content_plaintext"] for t in listed["data"]] == ["Chase them."]

    ada = fake.record_id("people", "Ada Lovelace")
    on_record = ok(
        api.post(
            "/v2/comments",
            json={
                "data": {
                    "format": "plaintext",
                    "content": "New thread",
                    "author": author,
                    "record": {"object": "people", "record_id": ada},
                }
            },
        )
    )["data"]
    assert on_record["thread_id"] != thread["id"]["thread_id"]
    assert len(ok(api.get("/v2/threads"))["data"]) == 3

    # Deleting a reply keeps the thread; deleting its head deletes the thread.
    assert ok(api.delete(f"/v2/comments/{reply['id']['comment_id']}")) == {}
    assert len(ok(api.get(f"/v2/threads/{thread['id']['thread_id']}"))["data"]["comments"]) == 1
    head = thread["comments"][0]["id"]["comment_id"]
    assert ok(api.delete(f"/v2/comments/{head}")) == {}
    error(api.get(f"/v2/threads/{thread['id']['thread_id']}"), 404, "not_found")
    error(api.get(f"/v2/comments/{head}"), 404, "not_found")
    error(api.delete(f"/v2/comments/{head}"), 404, "not_found")

    bad_author = {"type": "workspace-member", "id": MISSING}
    body = error(
        api.post(
            "/v2/comments",
            json={
                "data": {
                    "format": "plaintext",
                    "content": "x",
                    "author": bad_author,
                    "thread_id": on_record["thread_id"],
                }
            },
        ),
        400,
        "value_not_found",
    )
    assert MISSING in body["message"]
    gone = error(
        api.post(
            "/v2/comments",
            json={
                "data": {
                    "format": "plaintext",
                    "content": "x",
                    "author": author,
                    "thread_id": MISSING,
                }
            },
        ),
        400,
        "value_not_found",
    )
    # The document spells this one status code "statusCode"; the fake sends both.
    assert gone["statusCode"] == gone["status_code"] == 400
    assert gone["message"].startswith("The referenced Thread could not be found")
    assert [c.endpoint for c in fake.calls if c.endpoint.startswith(("comments", "threads"))][
        :4
    ] == ["threads.list", "threads.get", "comments.create", "comments.get"]


# --- auth, scopes and workspaces ---------------------------------------------------------


def test_required_scopes_come_from_the_document():
    table = rest.required_scopes()
    assert table[("GET", "/v2/tasks")] == (
        "task:read",
        "object_configuration:read",
        "record_permission:read",
        "user_management:read",
    )
    assert table[("DELETE", "/v2/notes/{note_id}")] == ("note:read-write",)
    assert table[("GET", "/v2/self")] == ()
    assert rest.has_scope({"note:read-write"}, "note:read")
    assert not rest.has_scope({"note:read"}, "note:read-write")


def test_missing_scope_is_a_403(fake):
    with client_for(fake, scopes="record_permission:read object_configuration:read") as api:
        assert ok(api.post("/v2/objects/people/records/query", json={}))["data"]
        body = error(api.post("/v2/objects/people/records", json={"data": {"values": {}}}), 403)
        assert body == {
            "status_code": 403,
            "type": "auth_error",
            "code": "missing_scope",
            "message": "The access token is missing the scope(s) this operation requires: "
            "record_permission:read-write.",
        }
        notes = error(api.get("/v2/notes"), 403, "missing_scope")
        assert "note:read" in notes["message"]
    # read-write satisfies read; comment scopes alone do not reach record threads.
    with client_for(fake, scopes="comment:read-write") as api:
        acme = fake.record_id("companies", "Acme Corp")
        assert ok(api.get("/v2/threads"))["data"]
        threads = error(
            api.get("/v2/threads", params={"object": "companies", "record_id": acme}),
            403,
            "missing_scope",
        )
        assert "object_configuration:read, record_permission:read" in threads["message"]


def test_rest_needs_a_live_token(fake):
    with httpx.Client(transport=fake.transport(), base_url=API) as anonymous:
        body = error(anonymous.get("/v2/objects"), 401)
        assert body["type"] == "auth_error"
        dead = anonymous.get("/v2/objects", headers={"Authorization": "Bearer fake_at_nope"})
        assert dead.status_code == 401


def test_workspaces_are_isolated(fake):
    acme_api, globex_api = client_for(fake, "acme"), client_for(fake, "globex")
    with acme_api, globex_api:
        created = ok(
            acme_api.post(
                "/v2/objects/companies/records",
                json={"data": {"values": {"name": ["Only in Acme"]}}},
            )
        )["data"]
        record_id = created["id"]["record_id"]
        error(globex_api.get(f"/v2/objects/companies/records/{record_id}"), 404)
        globex_people = ok(globex_api.post("/v2/objects/people/records/query", json={}))["data"]
        assert names(globex_people) == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
        acme_ada = fake.record_id("people", "Ada Lovelace", workspace="acme")
        globex_ada = fake.record_id("people", "Ada Lovelace", workspace="globex")
        assert acme_ada != globex_ada == globex_people[0]["id"]["record_id"]
        assert globex_people[0]["id"]["workspace_id"] == fake.workspace("globex").id


def test_reset_restores_the_seed(fake, api):
    ada = fake.record_id("people", "Ada Lovelace")
    api.delete(f"/v2/objects/people/records/{ada}")
    fake.reset()
    assert fake.record_id("people", "Ada Lovelace") == ada
    assert len(fake.store().notes) == 1


# --- test controls: faults, rate limits, latency ---------------------------------------------


def test_fail_next_delay_and_rate_limit_next_use_rest_endpoint_names(fake, api):
    fake.fail_next("records.create", status=503)
    body = {"data": {"values": {"name": ["Flaky"]}}}
    assert error(api.post("/v2/objects/companies/records", json=body), 503)["code"]
    assert api.post("/v2/objects/companies/records", json=body).status_code == 200
    fake.rate_limit_next("notes.list")
    limited = api.get("/v2/notes")
    assert limited.status_code == 429 and limited.headers["retry-after"].endswith("GMT")
    fake.fail_next("tasks.get", exception=httpx.ReadTimeout)
    with pytest.raises(httpx.ReadTimeout):
        api.get(f"/v2/tasks/{MISSING}")
    fake.delay("objects.list", 0.1, times=1)
    started = time.monotonic()
    api.get("/v2/objects")
    assert time.monotonic() - started >= 0.1
    assert [c.status for c in fake.calls_to("records.create")] == [503, 200]


def _burst(api: httpx.Client, n: int, request) -> list[httpx.Response]:
    return [request(api) for _ in range(n)]


def test_rate_limits_are_enforced_per_workspace_and_kind():
    fake = FakeAttio(enforce_rate_limits=True, rate_limits={"read": 5, "write": 3})
    acme_api, globex_api = client_for(fake, "acme"), client_for(fake, "globex")
    with acme_api, globex_api:
        started = time.monotonic()
        reads = _burst(acme_api, 7, lambda c: c.get("/v2/self"))
        writes = _burst(acme_api, 4, lambda c: c.delete(f"/v2/notes/{MISSING}"))
        other = globex_api.get("/v2/workspace_members")
        query = acme_api.post("/v2/objects/people/records/query", json={})
        elapsed = time.monotonic() - started
        if elapsed > 0.9:
            pytest.skip(f"machine too slow to fit the burst in one second ({elapsed:.2f}s)")
        assert [r.status_code for r in reads] == [200] * 5 + [429] * 2
        assert [r.status_code for r in writes] == [404] * 3 + [429]
        assert other.status_code == 200  # another workspace has its own budget
        assert query.status_code == 429  # a records query counts as a read
        limited = error(reads[-1], 429)
        assert limited == {
            "status_code": 429,
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "message": "Rate limit exceeded, please try again later",
        }
        retry_at = parsedate_to_datetime(reads[-1].headers["Retry-After"]).timestamp()
        assert 0 <= retry_at - time.time() <= 2.0
        # The window slides: once the first requests are a second old, room again.
        time.sleep(max(0.0, retry_at - time.time()) + 0.05)
        assert acme_api.get("/v2/self").status_code == 200
    assert fake.peak_rate("acme", "read") == 8
    assert fake.peak_rate("acme", "write") == 4
    assert fake.peak_rate("globex", "read") == 1


def test_default_rate_limits_are_attios():
    fake = FakeAttio(enforce_rate_limits=True)
    assert fake.rate_limits == {"read": 100, "write": 25}
    with client_for(fake) as api:
        started = time.monotonic()
        writes = _burst(api, 26, lambda c: c.delete(f"/v2/tasks/{MISSING}"))
        if time.monotonic() - started > 0.9:
            pytest.skip("machine too slow to fit the burst in one second")
        assert [r.status_code for r in writes] == [404] * 25 + [429]


def test_peak_rate_without_enforcement(fake, api):
    for _ in range(30):
        assert api.get("/v2/self").status_code == 200
    api.post("/v2/notes", json={"data": {}})  # refused by the spec check: still a write
    time.sleep(0.25)
    api.get("/v2/self")
    assert fake.peak_rate("acme", "read") == 31
    assert fake.peak_rate(fake.workspace().id, "read", window=0.2) == 30
    assert fake.peak_rate("acme", "write") == 1
    assert fake.peak_rate("globex", "read") == 0
    fake.reset()
    assert fake.peak_rate("acme", "read") == 0


def test_latency_sync_async_and_server():
    fake = FakeAttio(latency=0.05)
    with client_for(fake) as api:
        started = time.monotonic()
        assert api.get("/v2/objects").status_code == 200
        assert time.monotonic() - started >= 0.05
    token = fake.add_api_key()

    async def ten_at_once() -> list[int]:
        async with httpx.AsyncClient(
            transport=fake.async_transport(),
            base_url=API,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            answers = await asyncio.gather(*(client.get("/v2/lists") for _ in range(10)))
            return [a.status_code for a in answers]

    started = time.monotonic()
    assert asyncio.run(ten_at_once()) == [200] * 10
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 0.4  # the waits overlap: the lock is not held

    with fake.serve() as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        started = time.monotonic()
        answer = client.get("/v2/workspace_members", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and time.monotonic() - started >= 0.05


def test_server_mode_serves_rest(fake):
    token = fake.add_api_key()
    with fake.serve() as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post(
            "/v2/objects/companies/records",
            json={"data": {"values": {"name": ["Served"], "domains": ["served.test"]}}},
            headers=headers,
        )
        assert created.status_code == 200
        record_id = created.json()["data"]["id"]["record_id"]
        fetched = client.get(f"/v2/objects/companies/records/{record_id}", headers=headers)
        assert fetched.json() == created.json()


def test_no_spec_violations_were_recorded(fake, api):
    api.post("/v2/objects/people/records/query", json={"filter": {"name": "Ada Lovelace"}})
    api.get(f"/v2/objects/people/records/{uuid.uuid4()}")
    assert fake.spec_violations == []

"""Tests for the fake Attio's schema writes and value history
(tests/fake_attio/schema_writes.py); no database.

Every answer is checked against Attio's OpenAPI document, as in test_fake_attio_rest.py.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fake_attio import FakeAttio
from tests.fake_attio.core import DEFAULT_SCOPES

from .test_fake_attio_rest import API, MISSING, client_for, error, ok

WRITE_SCOPES = f"{DEFAULT_SCOPES} object_configuration:read-write list_configuration:read-write"


@pytest.fixture
def fake() -> FakeAttio:
    return FakeAttio()


@pytest.fixture
def api(fake: FakeAttio):
    with client_for(fake, scopes=WRITE_SCOPES) as client:
        yield client


@pytest.fixture
def acme(fake: FakeAttio):
    return fake.store("acme")


def attribute_body(**overrides) -> dict:
    data = {
        "title": "Tier",
        "description": None,
        "api_slug": "tier",
        "type": "select",
        "is_required": False,
        "is_unique": False,
        "is_multiselect": False,
        "config": {},
    }
    return {"data": {**data, **overrides}}


LIST_BODY = {
    "data": {
        "name": "Hiring",
        "api_slug": "hiring",
        "parent_object": "people",
        "workspace_access": "full-access",
        "workspace_member_access": [],
    }
}


# --- objects ---------------------------------------------------------------------------


def test_create_object(fake, api, acme):
    body = {"data": {"api_slug": "projects", "singular_noun": "Project", "plural_noun": "Projects"}}
    created = ok(api.post("/v2/objects", json=body))["data"]

    assert created["api_slug"] == "projects"
    assert created["id"]["object_id"] == acme.objects["projects"].id
    assert ok(api.get("/v2/objects/projects"))["data"] == created
    assert fake.last("objects.create").status == 200


def test_create_object_with_a_taken_slug_conflicts(api):
    body = {"data": {"api_slug": "people", "singular_noun": "P", "plural_noun": "Ps"}}
    assert (
        "already exists"
        in error(api.post("/v2/objects", json=body), 409, "slug_conflict")["message"]
    )


def test_create_object_refuses_a_slug_that_is_not_snake_case(api):
    body = {"data": {"api_slug": "Big Projects", "singular_noun": "P", "plural_noun": "Ps"}}
    assert "snake case" in error(api.post("/v2/objects", json=body), 400)["message"]


def test_schema_writes_need_the_configuration_write_scopes(fake):
    body = {"data": {"api_slug": "projects", "singular_noun": "P", "plural_noun": "Ps"}}
    with client_for(fake) as read_only:
        refused = error(read_only.post("/v2/objects", json=body), 403, "missing_scope")
        assert "object_configuration:read-write" in refused["message"]
        error(read_only.post("/v2/lists", json=LIST_BODY), 403)
    # Creating an attribute names its scope per target.
    with client_for(fake, scopes=f"{DEFAULT_SCOPES} object_configuration:read-write") as client:
        ok(client.post("/v2/objects/people/attributes", json=attribute_body()))
        refused = error(
            client.post("/v2/lists/sales_pipeline/attributes", json=attribute_body()), 403
        )
        assert "list_configuration:read-write" in refused["message"]


def test_rename_an_object_moves_its_records(api, acme):
    deal = acme.record_id("deals", "Acme expansion")
    renamed = ok(api.patch("/v2/objects/deals", json={"data": {"api_slug": "opportunities"}}))

    assert renamed["data"]["api_slug"] == "opportunities"
    assert renamed["data"]["singular_noun"] == "Deal"
    record = ok(api.get(f"/v2/objects/opportunities/records/{deal}"))["data"]
    assert record["values"]["name"][0]["value"] == "Acme expansion"
    error(api.get("/v2/objects/deals"), 404, "not_found")


def test_update_object_conflicts_and_unknowns(api):
    error(api.patch("/v2/objects/deals", json={"data": {"api_slug": "people"}}), 409)
    error(api.patch("/v2/objects/spaceships", json={"data": {"plural_noun": "X"}}), 404)
    nouns = ok(api.patch("/v2/objects/deals", json={"data": {"plural_noun": "Opportunities"}}))
    assert nouns["data"]["plural_noun"] == "Opportunities"


# --- attributes ------------------------------------------------------------------------


def test_create_a_select_attribute_and_write_its_option(api, acme):
    created = ok(api.post("/v2/objects/companies/attributes", json=attribute_body()))["data"]
    assert (created["api_slug"], created["type"], created["is_archived"]) == (
        "tier",
        "select",
        False,
    )
    ok(api.post("/v2/objects/companies/attributes/tier/options", json={"data": {"title": "Gold"}}))
    hooli = acme.record_id("companies", "Hooli")
    written = ok(
        api.patch(
            f"/v2/objects/companies/records/{hooli}",
            json={"data": {"values": {"tier": ["Gold"]}}},
        )
    )
    assert written["data"]["values"]["tier"][0]["option"]["title"] == "Gold"


def test_create_record_reference_and_currency_attributes(api, acme):
    reference = attribute_body(
        api_slug="partner",
        type="record-reference",
        is_multiselect=True,
        config={"record_reference": {"allowed_objects": ["companies"]}},
    )
    created = ok(api.post("/v2/objects/people/attributes", json=reference))["data"]
    assert created["config"]["record_reference"]["allowed_object_ids"] == [
        acme.objects["companies"].id
    ]
    assert created["is_multiselect"] is True

    currency = attribute_body(
        api_slug="budget",
        type="currency",
        config={"currency": {"default_currency_code": "EUR", "display_type": "code"}},
    )
    created = ok(api.post("/v2/objects/deals/attributes", json=currency))["data"]
    assert created["config"]["currency"]["default_currency_code"] == "EUR"
    assert acme.objects["deals"].attributes["budget"].default_currency_code == "EUR"


def test_create_attribute_refusals(api):
    taken = attribute_body(api_slug="name", type="text")
    assert (
        "already exists"
        in error(api.post("/v2/objects/people/attributes", json=taken), 409, "slug_conflict")[
            "message"
        ]
    )
    error(api.post("/v2/objects/spaceships/attributes", json=attribute_body()), 404, "not_found")
    # A type the document does not list is refused by the fake's own spec check.
    error(api.post("/v2/objects/people/attributes", json=attribute_body(type="colour")), 400)
    status = attribute_body(api_slug="phase", type="status")
    assert (
        "not supported on objects"
        in error(api.post("/v2/objects/people/attributes", json=status), 400)["message"]
    )
    multi = attribute_body(api_slug="score", type="number", is_multiselect=True)
    error(api.post("/v2/objects/people/attributes", json=multi), 400, "validation_type")
    wrong_config = attribute_body(
        type="text", config={"currency": {"default_currency_code": "EUR", "display_type": "code"}}
    )
    error(api.post("/v2/objects/people/attributes", json=wrong_config), 400)
    unknown_object = attribute_body(
        api_slug="partner",
        type="record-reference",
        config={"record_reference": {"allowed_objects": ["spaceships"]}},
    )
    error(api.post("/v2/objects/people/attributes", json=unknown_object), 404)


def test_update_attribute_title_archive_and_slug(api, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    data = {"title": "Role", "api_slug": "role", "is_required": False}
    updated = ok(api.patch("/v2/objects/people/attributes/job_title", json={"data": data}))

    assert (updated["data"]["title"], updated["data"]["api_slug"]) == ("Role", "role")
    record = ok(api.get(f"/v2/objects/people/records/{ada}"))["data"]
    assert record["values"]["role"][0]["value"] == "Chief Analyst"
    assert "job_title" not in record["values"]

    ok(api.patch("/v2/objects/people/attributes/role", json={"data": {"is_archived": True}}))
    listed = ok(api.get("/v2/objects/people/attributes"))["data"]
    assert "role" not in [a["api_slug"] for a in listed]
    archived = ok(api.get("/v2/objects/people/attributes", params={"show_archived": "true"}))
    assert "role" in [a["api_slug"] for a in archived["data"]]


def test_update_attribute_refusals(api):
    taken = {"data": {"api_slug": "name"}}
    assert (
        "already exists"
        in error(api.patch("/v2/objects/people/attributes/job_title", json=taken), 400)["message"]
    )
    system = {"data": {"is_archived": True}}
    error(
        api.patch("/v2/objects/people/attributes/created_by", json=system),
        400,
        "system_edit_unauthorized",
    )
    error(api.patch("/v2/objects/people/attributes/nope", json=system), 404, "not_found")
    # The type can't change: the document's body has no `type`, so the fake's own
    # request check refuses it (with its generic 400).
    extra = {"data": {"type": "number"}}
    assert api.patch("/v2/objects/people/attributes/job_title", json=extra).status_code == 400


# --- select options and statuses -----------------------------------------------------------


def test_select_options_create_conflict_and_update(api, acme):
    url = "/v2/lists/sales_pipeline/attributes/priority/options"
    created = ok(api.post(url, json={"data": {"title": "Urgent"}}))["data"]
    assert created["title"] == "Urgent"
    assert (
        created["id"]["option_id"]
        == acme.lists["sales_pipeline"].attributes["priority"].option("Urgent").id
    )
    error(api.post(url, json={"data": {"title": "low"}}), 409, "slug_conflict")

    archived = ok(api.patch(f"{url}/Low", json={"data": {"is_archived": True}}))["data"]
    assert archived["is_archived"] is True
    by_id = ok(api.patch(f"{url}/{created['id']['option_id']}", json={"data": {"title": "P0"}}))
    assert by_id["data"]["title"] == "P0"
    error(api.patch(f"{url}/Medium", json={"data": {"title": "High"}}), 409)
    error(api.patch(f"{url}/Nonexistent", json={"data": {"title": "X"}}), 404)
    titles = [o["title"] for o in ok(api.get(url))["data"]]
    assert titles == ["Medium", "High", "P0"]


def test_statuses_create_and_update(api):
    url = "/v2/lists/sales_pipeline/attributes/stage/statuses"
    body = {
        "data": {"title": "On hold", "celebration_enabled": True, "target_time_in_status": "P7D"}
    }
    created = ok(api.post(url, json=body))["data"]
    assert (created["celebration_enabled"], created["target_time_in_status"]) == (True, "P7D")
    error(api.post(url, json={"data": {"title": "Qualified"}}), 409, "slug_conflict")

    updated = ok(api.patch(f"{url}/On hold", json={"data": {"is_archived": True}}))["data"]
    assert updated["is_archived"] is True
    error(api.patch(f"{url}/Nope", json={"data": {"title": "X"}}), 404, "not_found")
    # Options of a status attribute, or statuses of a select, are not found.
    error(
        api.post(
            "/v2/lists/sales_pipeline/attributes/stage/options", json={"data": {"title": "X"}}
        ),
        404,
    )


# --- lists -------------------------------------------------------------------------------


def test_create_list(api, acme):
    created = ok(api.post("/v2/lists", json=LIST_BODY))["data"]

    assert (created["api_slug"], created["parent_object"]) == ("hiring", ["people"])
    assert created["workspace_access"] == "full-access"
    assert acme.lists["hiring"].id == created["id"]["list_id"]
    assert ok(api.get("/v2/lists/hiring"))["data"] == created


def test_create_list_refusals(api, acme):
    taken = {"data": {**LIST_BODY["data"], "api_slug": "sales_pipeline"}}
    error(api.post("/v2/lists", json=taken), 409, "slug_conflict")
    unknown = {"data": {**LIST_BODY["data"], "parent_object": "spaceships"}}
    error(api.post("/v2/lists", json=unknown), 404, "not_found")
    # The document's enum leaves out null (though its type allows it), so a list that is
    # not full-access for the workspace needs a member with full access.
    narrow = {"data": {**LIST_BODY["data"], "workspace_access": "read-only"}}
    assert "full-access" in error(api.post("/v2/lists", json=narrow), 400)["message"]
    alice = acme.member("alice").id
    shared = {
        "data": {
            **LIST_BODY["data"],
            "workspace_access": "read-only",
            "workspace_member_access": [{"workspace_member_id": alice, "level": "full-access"}],
        }
    }
    created = ok(api.post("/v2/lists", json=shared))["data"]
    assert created["workspace_member_access"] == [
        {"workspace_member_id": alice, "level": "full-access"}
    ]
    stranger = {
        "data": {
            **shared["data"],
            "api_slug": "other",
            "workspace_member_access": [{"workspace_member_id": MISSING, "level": "full-access"}],
        }
    }
    error(api.post("/v2/lists", json=stranger), 400, "value_not_found")


def test_update_list_renames_and_keeps_entries(api, acme):
    data = {"name": "Deals board", "api_slug": "board", "workspace_access": "read-only"}
    updated = ok(api.patch("/v2/lists/sales_pipeline", json={"data": data}))["data"]

    assert (updated["name"], updated["api_slug"]) == ("Deals board", "board")
    # Alice keeps full access, so the list may be read-only for the workspace.
    assert updated["workspace_access"] == "read-only"
    entries = ok(api.post("/v2/lists/board/entries/query", json={}))["data"]
    assert len(entries) == 2
    error(api.get("/v2/lists/sales_pipeline"), 404)


def test_update_list_refusals(api):
    moving = {"data": {"parent_object": "people"}}
    refused = error(api.patch("/v2/lists/sales_pipeline", json=moving), 400)
    assert "cannot be changed" in refused["message"]
    error(api.patch("/v2/lists/nope", json={"data": {"name": "X"}}), 404, "not_found")
    ok(api.post("/v2/lists", json=LIST_BODY))
    taken = {"data": {"api_slug": "hiring"}}
    error(api.patch("/v2/lists/sales_pipeline", json=taken), 400, "value_not_found")
    nobody = {"data": {"workspace_access": "read-only", "workspace_member_access": []}}
    error(api.patch("/v2/lists/sales_pipeline", json=nobody), 400)


# --- value history ---------------------------------------------------------------------------


def test_record_value_history(fake, api, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    url = f"/v2/objects/people/records/{ada}/attributes/job_title/values"
    fake.advance(60)
    ok(
        api.patch(
            f"/v2/objects/people/records/{ada}",
            json={"data": {"values": {"job_title": ["Countess"]}}},
        )
    )

    current = ok(api.get(url))["data"]
    assert [v["value"] for v in current] == ["Countess"]
    assert current[0]["active_until"] is None
    history = ok(api.get(url, params={"show_historic": "true"}))["data"]
    assert [v["value"] for v in history] == ["Chief Analyst", "Countess"]
    assert history[0]["active_until"] == history[1]["active_from"]
    assert history[1]["created_by_actor"]["type"] == "api-token"
    assert (
        ok(api.get(url, params={"show_historic": "true", "limit": 1, "offset": 1}))["data"]
        == history[1:]
    )


def test_value_history_keeps_replaced_multiselect_values(api, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    body = {"data": {"values": {"email_addresses": ["ada@lovelace.org"]}}}
    ok(api.put(f"/v2/objects/people/records/{ada}", json=body))

    url = f"/v2/objects/people/records/{ada}/attributes/email_addresses/values"
    history = ok(api.get(url, params={"show_historic": "true"}))["data"]
    assert [(v["email_address"], v["active_until"] is None) for v in history] == [
        ("ada@acme.com", False),
        ("ada@lovelace.org", True),
    ]


def test_entry_value_history_of_a_status(fake, api, acme):
    entry = acme.entries_of("sales_pipeline")[0]
    url = f"/v2/lists/sales_pipeline/entries/{entry.id}/attributes/stage/values"
    before = ok(api.get(url))["data"]
    fake.advance(60)
    body = {"data": {"entry_values": {"stage": ["Closed won"]}}}
    ok(api.patch(f"/v2/lists/sales_pipeline/entries/{entry.id}", json=body))

    history = ok(api.get(url, params={"show_historic": "true"}))["data"]
    assert [v["status"]["title"] for v in history] == [before[0]["status"]["title"], "Closed won"]
    assert [v["status"]["title"] for v in ok(api.get(url))["data"]] == ["Closed won"]


def test_value_history_not_found(api, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    error(api.get(f"/v2/objects/people/records/{ada}/attributes/nope/values"), 404, "not_found")
    error(api.get(f"/v2/objects/people/records/{MISSING}/attributes/name/values"), 404)
    error(api.get(f"/v2/lists/sales_pipeline/entries/{MISSING}/attributes/stage/values"), 404)


def test_value_history_needs_the_read_scopes(fake, acme):
    ada = acme.record_id("people", "Ada Lovelace")
    with httpx.Client(
        transport=fake.transport(),
        base_url=API,
        headers={"Authorization": f"Bearer {fake.add_api_key(scopes='list_entry:read')}"},
    ) as client:
        url = f"/v2/objects/people/records/{ada}/attributes/name/values"
        assert "record_permission:read" in error(client.get(url), 403)["message"]

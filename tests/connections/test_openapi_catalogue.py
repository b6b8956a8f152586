"""The catalogue of Attio's OpenAPI document: finding operations by words, describing them
briefly, and checking a request (and building its path) before it is sent."""

import json

import pytest

from connections.openapi import catalogue
from connections.openapi.catalogue import RequestProblem

RECORD = "891dcbfc-9141-415d-9b2a-2238a6cc012d"


def names(operations) -> list[str]:
    return [operation.name for operation in operations]


def problems(*args, **kwargs) -> list[str]:
    with pytest.raises(RequestProblem) as raised:
        catalogue.validate(*args, **kwargs)
    return raised.value.problems


# --- the catalogue ------------------------------------------------------------------------------


def test_every_operation_of_the_document_is_catalogued():
    operations = catalogue.catalogue().operations

    assert len(operations) == 63
    assert "GET /v2/self" in operations
    query = operations["POST /v2/objects/{object}/records/query"]
    assert query.scopes == ("record_permission:read", "object_configuration:read")
    assert query.is_read
    assert [(p.name, p.location, p.required) for p in query.parameters] == [
        ("object", "path", True)
    ]
    assert query.body_required


def test_request_bodies_have_their_refs_resolved():
    attribute = catalogue.get("POST", "/v2/{target}/{identifier}/attributes")

    assert "$ref" not in json.dumps(attribute.body_schema)
    assert "referenced_actor_type" in json.dumps(attribute.body_schema)  # from input-value


def test_reads_are_gets_and_the_three_query_posts():
    reads = {o.name for o in catalogue.catalogue().operations.values() if o.is_read}

    assert {name for name in reads if not name.startswith("GET ")} == {
        "POST /v2/objects/{object}/records/query",
        "POST /v2/lists/{list}/entries/query",
        "POST /v2/objects/records/search",
    }
    assert "POST /v2/notes" not in reads


def test_webhooks_are_marked():
    webhooks = [o.name for o in catalogue.catalogue().operations.values() if o.is_webhook]

    assert len(webhooks) == 5
    assert all(" /v2/webhooks" in name for name in webhooks)


def test_every_operation_needs_a_scope_but_identify():
    # Creating an attribute names its scopes only in prose: the catalogue supplies them.
    unscoped = [o.name for o in catalogue.catalogue().operations.values() if not o.scopes]

    assert unscoped == ["GET /v2/self"]
    assert catalogue.get("POST", "/v2/{target}/{identifier}/attributes").scopes == (
        "object_configuration:read-write",
    )


def test_a_huge_number_in_the_query_is_a_problem_not_a_crash():
    with pytest.raises(RequestProblem) as refused:
        catalogue.validate("GET", "/v2/notes", query={"limit": "9" * 5000})

    assert "query.limit: expected an integer" in "\n".join(refused.value.problems)


def test_a_problem_never_quotes_the_value_sent():
    with pytest.raises(RequestProblem) as refused:
        catalogue.validate("POST", "/v2/notes", body={"data": {"format": "html-secret-value"}})

    assert "html-secret-value" not in "\n".join(refused.value.problems)


def test_read_write_scope_satisfies_read():
    operation = catalogue.get("GET", "/v2/notes")

    assert (
        catalogue.missing_scopes(
            operation, ["note:read-write", "object_configuration:read", "record_permission:read"]
        )
        == []
    )
    assert catalogue.missing_scopes(operation, ["note:read"]) == [
        "object_configuration:read",
        "record_permission:read",
    ]
    write = catalogue.get("POST", "/v2/notes")
    assert "note:read-write" in catalogue.missing_scopes(write, ["note:read"])


# --- search -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("list meetings", "GET /v2/meetings"),
        ("create select option", "POST /v2/{target}/{identifier}/attributes/{attribute}/options"),
        (
            "attribute history",
            "GET /v2/objects/{object}/records/{record_id}/attributes/{attribute}/values",
        ),
        ("add record to list", "POST /v2/lists/{list}/entries"),
        ("search people by email", "POST /v2/objects/records/search"),
        ("update task", "PATCH /v2/tasks/{task_id}"),
        (
            "call transcript",
            "GET /v2/meetings/{meeting_id}/call_recordings/{call_recording_id}/transcript",
        ),
        ("workspace members", "GET /v2/workspace_members"),
        ("create note", "POST /v2/notes"),
        ("who am i", "GET /v2/self"),
    ],
)
def test_search_finds_the_operation_for_plain_words(words, expected):
    assert names(catalogue.search(words, 3))[0] == expected


def test_search_stays_among_the_operations_given_and_within_the_limit():
    reads = [o for o in catalogue.catalogue().operations.values() if o.is_read]
    found = catalogue.search("create a record", 5, among=reads)

    assert found and all(o.is_read for o in found)
    assert len(catalogue.search("list", 4)) == 4
    assert catalogue.search("zzzz qqqq", 5) == []


# --- describe -----------------------------------------------------------------------------------


def test_describe_stays_small_for_every_operation():
    sizes = {
        operation.name: len(json.dumps(catalogue.describe(operation)))
        for operation in catalogue.catalogue().operations.values()
    }

    # ~1,000 tokens at most; most are far smaller.
    assert max(sizes.values()) <= 4500, max(sizes.items(), key=lambda item: item[1])
    assert sorted(sizes.values())[len(sizes) // 2] <= 1500


def test_describe_gives_what_a_model_needs_without_prose():
    described = catalogue.describe(catalogue.get("POST", "/v2/tasks"))

    assert described["operation"] == "POST /v2/tasks"
    assert described["summary"] == "Create a task"
    assert described["description"].startswith("Creates a new task.")
    assert "Required scopes" not in described["description"]
    assert described["reads_only"] is False
    data = described["body"]["properties"]["data"]
    assert data["properties"]["format"] == {"type": "string", "enum": ["plaintext"]}
    assert "content" in data["required"]
    text = json.dumps(described["body"])
    assert '"description"' not in text and '"example"' not in text


def test_describe_keeps_properties_named_like_prose_keywords():
    # An attribute has a `title` and a `description`: property names, not prose.
    described = catalogue.describe(catalogue.get("POST", "/v2/{target}/{identifier}/attributes"))
    data = described["body"]["properties"]["data"]["properties"]

    assert "title" in data and "description" in data


def test_describe_summarises_deep_and_long_schemas_with_a_note():
    described = catalogue.describe(catalogue.get("POST", "/v2/{target}/{identifier}/attributes"))

    assert "not shown here" in json.dumps(described["body"])
    tasks = json.dumps(catalogue.describe(catalogue.get("POST", "/v2/tasks")))
    assert "one of 250" in tasks or "are shown" in tasks  # the country codes


def test_describe_lists_parameters_with_their_types():
    described = catalogue.describe(catalogue.get("GET", "/v2/tasks"))
    by_name = {p["name"]: p for p in described["parameters"]}

    assert by_name["sort"]["type"] == {"enum": ["created_at:asc", "created_at:desc"]}
    assert by_name["linked_record_id"]["type"] == "string (uuid)"
    assert by_name["limit"] == {
        "name": "limit",
        "in": "query",
        "required": False,
        "type": "integer",
        "description": by_name["limit"]["description"],
    }
    attributes = catalogue.describe(catalogue.get("GET", "/v2/{target}/{identifier}/attributes"))
    assert attributes["parameters"][0]["type"] == {"enum": ["objects", "lists"]}


# --- validate -----------------------------------------------------------------------------------


def test_validate_builds_the_concrete_path_and_query():
    request = catalogue.validate(
        "GET",
        "/v2/objects/{object}/records/{record_id}/attributes/{attribute}/values",
        {"object": "people", "record_id": RECORD, "attribute": "email_addresses"},
        {"show_historic": "true", "limit": 5},
    )

    assert request.path == f"/v2/objects/people/records/{RECORD}/attributes/email_addresses/values"
    assert request.query == {"show_historic": "true", "limit": "5"}
    assert request.body is None


def test_validate_accepts_a_body_that_fits():
    body = {"data": {"values": {"name": ["Ada"]}}}
    request = catalogue.validate(
        "POST", "/v2/objects/{object}/records", {"object": "people"}, None, body
    )

    assert request.path == "/v2/objects/people/records"
    assert request.body == body


def test_unknown_operation():
    with pytest.raises(RequestProblem) as raised:
        catalogue.validate("GET", "/v2/objects/people")
    assert raised.value.code == "unknown_operation"
    with pytest.raises(RequestProblem):
        catalogue.validate("DELETE", "/v2/objects")


def test_missing_and_unknown_path_parameters():
    found = problems("GET", "/v2/objects/{object}/records/{record_id}", {"object": "people"})
    assert found == [
        "path_params.record_id: required (the path is /v2/objects/{object}/records/{record_id})"
    ]

    found = problems("GET", "/v2/objects/{object}", {"object": "people", "extra": "x"})
    assert found == [
        "path_params.extra: not a parameter of /v2/objects/{object} (its parameters: object)"
    ]


@pytest.mark.parametrize(
    "value", ["people/../lists", "..", ".", "a/b", "%2f", "people%2F..", "a?b=1", "a#b", "a b", ""]
)
def test_path_arguments_cannot_change_the_path(value):
    found = problems("GET", "/v2/objects/{object}", {"object": value})

    assert found == [
        "path_params.object: expected a slug or UUID (letters, digits, '-', '_' and '.' only)"
    ]


def test_dots_inside_a_path_argument_are_kept_and_quoted():
    request = catalogue.validate("GET", "/v2/lists/{list}", {"list": "sales.pipeline"})

    assert request.path == "/v2/lists/sales.pipeline"


def test_path_argument_with_an_enum_must_be_one_of_it():
    found = problems(
        "GET", "/v2/{target}/{identifier}/attributes", {"target": "records", "identifier": "people"}
    )
    assert found == ['path_params.target: expected one of "objects", "lists"']

    found = problems(
        "GET",
        "/v2/{target}/{identifier}/attributes",
        {"target": "../objects", "identifier": "people"},
    )
    assert found == ['path_params.target: expected one of "objects", "lists"']


def test_path_argument_must_have_its_format():
    found = problems("GET", "/v2/notes/{note_id}", {"note_id": "not-a-uuid"})

    assert found == ["path_params.note_id: expected a value in uuid format"]
    body = {
        "query": "Ada",
        "objects": ["people"],
        "request_as": {"type": "workspace-member", "email_address": "ada"},
    }
    found = problems("POST", "/v2/objects/records/search", None, None, body)
    assert found == [
        "body.request_as.email_address: expected a value in email format (or another of the 3 "
        "shapes)"
    ]


def test_query_parameters_are_checked():
    found = problems("GET", "/v2/tasks", None, {"sort": "newest", "limit": "ten", "colour": "red"})

    assert found == [
        "query.colour: not a query parameter of GET /v2/tasks (its query parameters: limit, "
        "offset, sort, linked_object, linked_record_id, assignee, is_completed)",
        "query.limit: expected an integer, got a string",
        'query.sort: expected one of "created_at:asc", "created_at:desc"',
    ]
    found = problems("GET", "/v2/objects", None, {"limit": 1})
    assert found == ["query.limit: not a query parameter of GET /v2/objects (it has none)"]


def test_required_query_parameter():
    found = problems(
        "PUT", "/v2/objects/{object}/records", {"object": "people"}, None, {"data": {"values": {}}}
    )

    assert found == ["query.matching_attribute: required"]


def test_body_problems_name_the_path_and_what_is_expected():
    template = "/v2/objects/{object}/records"
    assert problems("POST", template, {"object": "people"}) == [
        "body: required by POST /v2/objects/{object}/records"
    ]
    assert problems("POST", template, {"object": "people"}, None, {"values": {}}) == [
        "body: missing required property 'data'"
    ]
    body = {"data": {"values": {"name": "Ada"}}}
    assert problems("POST", template, {"object": "people"}, None, body) == [
        "body.data.values.name: expected an array, got a string"
    ]
    assert problems("GET", "/v2/objects", None, None, {"data": {}}) == [
        "body: GET /v2/objects takes no body"
    ]


def test_body_enum_bounds_and_unknown_properties():
    body = {
        "data": {
            "content": "x" * 2001,
            "format": "markdown",
            "deadline_at": None,
            "is_completed": False,
            "linked_records": [],
            "assignees": [{"workspace_member_email_address": "a@example.com", "extra": 1}],
        }
    }
    found = problems("POST", "/v2/tasks", None, None, body)

    assert "body.data.content: expected at most 2000 characters" in found
    assert 'body.data.format: expected one of "plaintext"' in found
    assert any(p.startswith("body.data.assignees[0]") for p in found), found


def test_body_in_anyof_names_the_closest_shape():
    body = {"sorts": [{"direction": "up", "attribute": "name"}]}
    found = problems("POST", "/v2/objects/{object}/records/query", {"object": "people"}, None, body)

    assert found == [
        'body.sorts[0].direction: expected one of "asc", "desc" (or another of the 2 shapes)'
    ]

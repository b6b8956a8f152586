"""What tools/list sends (tools.definitions): lean input schemas, no output schema, the MCP
Inspector's `--strict` schema-portability rules met, the compact profile within its token
budget; and tool results still carrying structuredContent that the SDK's client accepts."""

import json

import pytest

from mcp_gateway import tools
from mcp_gateway.models import ToolProfile
from tests.mcp_gateway.conftest import tool_text

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec")

# --- The Inspector's --strict rules ----------------------------------------------------------
#
# `npx @modelcontextprotocol/inspector --cli URL --method tools/list --strict` (the flag is
# there from 2.4.0, which needs Node 22.19; 1.0.3, which the README pins for Node 20, has no
# lint; the rules are the same from 2.4.0 to 2.12.0) walks every inputSchema and
# outputSchema and reports, as its core/json/schemaLint.ts does:
# - boolean-schema (error): a bare true/false where a schema object is expected (allowed
#   only as additionalProperties, unevaluatedProperties, additionalItems, unevaluatedItems);
# - type-union (warning): `type` given as an array of types;
# - remote-ref (warning): a `$ref` outside the document (unless the schema declares `$id`s);
# - untyped-schema (warning): a schema with no validation keyword at all (except under `not`).
# With --strict an error exits 6. Ours must have no finding of either severity.
# test_inspector_strict.py runs the Inspector itself over HTTP; this checks the same rules
# on every definition without Node.js, and names the schema path of a finding.

BOOLEAN_VALUED = {
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
}
SUBSCHEMA = [
    "items",
    "contains",
    "not",
    "propertyNames",
    "if",
    "then",
    "else",
    *BOOLEAN_VALUED,
    "contentSchema",
]
SUBSCHEMA_LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"]
SUBSCHEMA_MAPS = ["properties", "patternProperties", "dependentSchemas", "dependencies"]
SUBSCHEMA_MAPS += ["$defs", "definitions"]
CONSTRAINING = {
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "format", "contentMediaType",
    "contentEncoding", "contentSchema", "maxItems", "minItems", "uniqueItems", "maxContains",
    "minContains", "maxProperties", "minProperties", "required", "dependentRequired", "allOf",
    "anyOf", "oneOf", "not", "items", "prefixItems", "contains", "additionalItems",
    "unevaluatedItems", "properties", "patternProperties", "additionalProperties",
    "unevaluatedProperties", "propertyNames", "dependentSchemas", "dependencies", "$ref",
    "$dynamicRef", "$recursiveRef",
}  # fmt: skip
TYPES = {"null", "boolean", "object", "array", "number", "string", "integer"}


def subschemas(node: dict, path: str):
    for key in SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield sub, f"{path}.{key}[{name!r}]", key
    for key in SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield sub, f"{path}.{key}[{i}]", key
    for key in SUBSCHEMA:
        if key not in node:
            continue
        if key == "items" and isinstance(node[key], list):
            for i, sub in enumerate(node[key]):
                yield sub, f"{path}.items[{i}]", key
        else:
            yield node[key], f"{path}.{key}", key


def declares_id(node) -> bool:
    if not isinstance(node, dict):
        return False
    if isinstance(node.get("$id"), str) and node["$id"]:
        return True
    return any(declares_id(sub) for sub, _, _ in subschemas(node, ""))


def portability_findings(schema, path: str = "") -> list[tuple[str, str]]:
    """(rule, path) for each of the Inspector's findings in one schema."""
    found: list[tuple[str, str]] = []
    has_ids = declares_id(schema)

    def walk(node, path: str, keyword: str | None) -> None:
        if isinstance(node, bool):
            if keyword not in BOOLEAN_VALUED:
                found.append(("boolean-schema", path))
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if isinstance(kind, list) and kind and set(kind) <= TYPES and len(set(kind)) == len(kind):
            found.append(("type-union", path))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref and not ref.startswith("#") and not has_ids:
            found.append(("remote-ref", path))
        conditional = "if" in node and ("then" in node or "else" in node)
        if not (CONSTRAINING & node.keys() or conditional) and keyword != "not":
            found.append(("untyped-schema", path))
        for sub, sub_path, sub_keyword in subschemas(node, path):
            walk(sub, sub_path, sub_keyword)

    walk(schema, path, None)
    return found


def test_the_portability_check_finds_what_the_inspector_does():
    schema = {
        "type": "object",
        "properties": {
            "union": {"type": ["string", "null"]},
            "remote": {"$ref": "https://example.com/schema.json"},
            "anything": {"description": "no keyword"},
            "bare": True,
            "free": {"type": "object", "additionalProperties": True},
            "never": {"not": {}},
        },
    }

    assert sorted(portability_findings(schema)) == [
        ("boolean-schema", ".properties['bare']"),
        ("remote-ref", ".properties['remote']"),
        ("type-union", ".properties['union']"),
        ("untyped-schema", ".properties['anything']"),
    ]


def listed(mcp, key) -> list[dict]:
    async def body(client):
        result = await client.list_tools()
        return result.model_dump(by_alias=True, exclude_unset=True)["tools"]

    return mcp(key, body)


def test_every_tool_schema_passes_the_inspectors_strict_checks(mcp, alice_key):
    findings = {
        tool["name"]: portability_findings(tool.get("inputSchema"))
        + portability_findings(tool.get("outputSchema", {"type": "object"}))
        for tool in listed(mcp, alice_key[1])
    }

    assert {name: found for name, found in findings.items() if found} == {}


# --- Lean definitions -------------------------------------------------------------------------


def every_schema(node):
    if isinstance(node, dict):
        yield node
        for sub, _, _ in subschemas(node, ""):
            yield from every_schema(sub)


def test_tools_list_sends_no_output_schema_and_no_pydantic_noise(mcp, alice_key):
    definitions = listed(mcp, alice_key[1])

    assert definitions
    for tool in definitions:
        assert "outputSchema" not in tool, tool["name"]
        for schema in every_schema(tool["inputSchema"]):
            assert "title" not in schema, tool["name"]
            assert schema.get("additionalProperties") is not True, tool["name"]
            assert {"type": "null"} not in schema.get("anyOf", []), tool["name"]
            assert "default" not in schema or schema["default"] is not None, tool["name"]
    # An argument called `title` is an argument, not pydantic's title: it stays.
    create_note = next(t for t in definitions if t["name"] == "create_note")
    assert "title" in create_note["inputSchema"]["properties"]


def test_lean_schema_inlines_a_model_used_once_and_keeps_one_used_twice():
    once = {"type": "object", "title": "Once", "properties": {"a": {"type": "string"}}}
    twice = {"type": "object", "title": "Twice", "properties": {"b": {"type": "integer"}}}
    schema = {
        "$defs": {"Once": once, "Twice": twice},
        "type": "object",
        "title": "fnArguments",
        "properties": {
            "one": {"$ref": "#/$defs/Once", "description": "used once"},
            "first": {"anyOf": [{"$ref": "#/$defs/Twice"}, {"type": "null"}], "default": None},
            "second": {"items": {"$ref": "#/$defs/Twice"}, "type": "array", "title": "Second"},
            "nullable": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Nullable"},
            "id": {"type": "string", "pattern": tools.UUID_PATTERN},
            "slug": {"type": "string", "pattern": tools.SLUG_PATTERN, "minLength": 1,
                     "maxLength": 128, "description": "A slug"},
        },
        "required": ["one", "nullable"],
    }  # fmt: skip

    assert tools.lean_schema(schema) == {
        "type": "object",
        "properties": {
            "one": {"type": "object", "properties": {"a": {"type": "string"}},
                    "description": "used once"},
            "first": {"$ref": "#/$defs/Twice"},
            "second": {"items": {"$ref": "#/$defs/Twice"}, "type": "array"},
            # Required and nullable: null is a value of its own here, so it is kept.
            "nullable": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "id": {"type": "string", "format": "uuid"},
            "slug": {"type": "string", "description": "A slug"},
        },
        "required": ["one", "nullable"],
        "$defs": {"Twice": {"type": "object", "properties": {"b": {"type": "integer"}}}},
    }  # fmt: skip


def test_the_server_still_checks_what_the_listing_no_longer_spells_out(call_tool, alice_key):
    result = call_tool(alice_key[1], "get_record", {"object": "people", "record_id": "nope"})

    assert result.is_error
    assert "record_id" in tool_text(result) and "UUID" in tool_text(result)


def test_results_still_carry_structured_content_and_its_text(run_tools, alice_key, fake_attio):
    whoami, objects = run_tools(alice_key[1], ("whoami", {}), ("list_objects", {}))

    for result in (whoami, objects):
        assert not result.is_error, tool_text(result)
        # The SDK's client saw no output schema, and passed structuredContent through.
        assert isinstance(result.structured_content, dict)
        assert json.loads(tool_text(result)) == result.structured_content
    assert whoami.structured_content["workspace_name"]
    assert [o["api_slug"] for o in objects.structured_content["objects"]][0] == "people"


# --- Size -------------------------------------------------------------------------------------

# ~1,500 tokens at 4 bytes a token (bench/tool_list_size.py prints every profile's figures).
# Under 8,000 tokens at bytes / 4, for every tool of the full profile.
FULL_BUDGET_BYTES = 32_000
COMPACT_BUDGET_BYTES = 6_000


def tools_list_bytes(raw, plaintext: str) -> int:
    response = raw(
        "POST",
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        headers={
            "Authorization": f"Bearer {plaintext}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert response.status_code == 200, response.text
    return len(response.content)


def test_both_lists_fit_their_budgets_and_are_leaner_than_the_sdks(
    raw, alice_connection, make_key, monkeypatch
):
    _, compact = make_key(alice_connection, tool_profile=ToolProfile.COMPACT)
    _, full = make_key(alice_connection)

    compact_bytes = tools_list_bytes(raw, compact)
    full_bytes = tools_list_bytes(raw, full)
    monkeypatch.setattr(tools, "definitions", lambda listed: listed)
    untrimmed_bytes = tools_list_bytes(raw, full)

    assert compact_bytes < COMPACT_BUDGET_BYTES
    assert full_bytes < FULL_BUDGET_BYTES
    assert full_bytes < untrimmed_bytes * 0.55

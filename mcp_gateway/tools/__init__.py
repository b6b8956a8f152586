"""The MCP tools, one module per Attio area, and the catalogue they register in.

Each tool takes the Caller (auth.py: the key, its owner and connection) as its first
argument, calls `connections.attio` through `_call.call_attio`, and shapes the result.
The modules whose names start with an underscore hold what the areas share: `_call`
(the caller's connection, the Attio call, error mapping, slug help), `_arguments`
(argument types, and the wording for arguments that don't fit) and `_results` (shaping
Attio's answers, the paged result).
"""

import inspect
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import Tool as MCPTool
from mcp.types import ToolAnnotations

from ._arguments import MEMBER_PATTERN, SLUG_PATTERN, UUID_PATTERN
from ._call import as_sdk_tool


@dataclass
class ToolSpec:
    fn: Callable[..., Awaitable[Any]]
    title: str
    annotations: ToolAnnotations


REGISTRY: dict[str, ToolSpec] = {}


def tool(*, title: str, read_only: bool, destructive: bool = False, idempotent: bool = False):
    """Register a tool with its annotations. Every tool reaches Attio (open world)."""

    def decorator(fn):
        REGISTRY[fn.__name__] = ToolSpec(
            fn=as_sdk_tool(fn),
            title=title,
            annotations=ToolAnnotations(
                title=title,
                read_only_hint=read_only,
                destructive_hint=destructive,
                idempotent_hint=idempotent or read_only,
                open_world_hint=True,
            ),
        )
        return fn

    return decorator


def register(server: MCPServer) -> None:
    for name, spec in REGISTRY.items():
        server.add_tool(
            spec.fn,
            name=name,
            title=spec.title,
            # Without the docstring's indentation, which clients would show verbatim.
            description=inspect.cleandoc(spec.fn.__doc__ or ""),
            annotations=spec.annotations,
        )


# --- The definitions tools/list sends ---------------------------------------------------
#
# Every definition is sent to the model in every conversation, so tools/list carries what a
# model uses to call a tool and nothing else (bench/tool_list_size.py measures it):
#
# - No `outputSchema`. MCP makes it optional; clients use it to validate `structuredContent`
#   and models are generally not shown it, yet it was two fifths of the list. The tools
#   still answer with `structuredContent` and the same JSON as a text block (the SDK keeps
#   the return model server-side), and the SDK's client, having seen no schema, passes
#   `structuredContent` through unvalidated (tests/mcp_gateway/test_tool_list_size.py).
# - No pydantic `title` on each argument and model (the argument's name again), no
#   `additionalProperties: true` (the default), no `minLength: 1` (the server still refuses
#   an empty string, in words), no `"default": null` on optional arguments
#   and no `{"type": "null"}` branch beside them: omitting such an argument is the same
#   call as sending null, which the server still accepts.
# - A model used once (`$defs`) inlined where it is used, a UUID written as
#   `format: uuid` rather than its 90-character pattern, a slug without its pattern and
#   length limits (its description says it is a slug; there are ~70 of them), and a map's
#   key pattern as its `propertyNames`. The server still checks every argument against the
#   tool's own signature, so nothing here loosens what it accepts.
#
# The result also passes the MCP Inspector's `--strict` schema-portability rules (a single
# `type` per schema, no bare `true`/`false` schemas, no remote `$ref`, no schema that
# constrains nothing): tests/mcp_gateway/test_tool_list_size.py checks them.

# Where a schema holds schemas: by name, in a list, or as one value.
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "not", "contains")
# A slug's pattern and length limits: what `Slug` checks (_arguments.py), 56 bytes a time.
SLUG_LIMITS = ("pattern", "minLength", "maxLength")


def definitions(listed: list[MCPTool]) -> list[MCPTool]:
    """The tools as tools/list sends them: lean schemas and annotations, no output schema
    and no display title (a client shows the name instead: `query_records` reads as well as
    "Query records", and the 50 titles were 1.4 KB of every conversation)."""
    return [
        tool.model_copy(
            update={
                "title": None,
                "input_schema": lean_schema(tool.input_schema),
                "output_schema": None,
                "annotations": lean_annotations(tool.annotations),
            }
        )
        for tool in listed
    ]


# MCP's ToolAnnotations defaults: what a client assumes of a hint that is not sent.
HINT_DEFAULTS = {
    "read_only_hint": False,
    "destructive_hint": True,
    "idempotent_hint": False,
    "open_world_hint": True,
}


def lean_annotations(annotations: ToolAnnotations | None) -> ToolAnnotations | None:
    """The hints that differ from MCP's defaults, which say the same to every client.

    The destructive and idempotent hints mean something only for a tool that writes (the
    spec's ToolAnnotations), so a read-only tool sends `readOnlyHint` alone. No `title`
    either (see `definitions`): the SDK's client (`get_display_name`: title, then
    annotations.title, then name) then shows the name.
    The registry keeps the full annotations: `is_read_only` and the policy read those.
    """
    if annotations is None:
        return None
    hints = {
        hint: getattr(annotations, hint)
        for hint, default in HINT_DEFAULTS.items()
        if getattr(annotations, hint) not in (None, default)
    }
    if annotations.read_only_hint:
        hints.pop("destructive_hint", None)
        hints.pop("idempotent_hint", None)
    return ToolAnnotations(**hints) if hints else None


def lean_schema(input_schema: dict) -> dict:
    """A tool's input schema without what a model doesn't need (see above)."""
    defs = input_schema.get("$defs", {})
    uses = Counter(re.findall(r'"#/\$defs/([^"]+)"', json.dumps(input_schema)))
    inline = {name for name, count in uses.items() if count == 1 and name in defs}
    lean = _lean(input_schema, defs, inline, top=True)
    kept = {name: _lean(d, defs, inline) for name, d in defs.items() if name not in inline}
    lean.pop("$defs", None)
    if kept:
        lean["$defs"] = kept
    return lean


def _lean(node: dict, defs: dict, inline: set[str], top: bool = False) -> dict:
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in inline:
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs[ref.removeprefix("#/$defs/")], **rest}
    if "default" in node and node["default"] is None:
        branches = [b for b in node.get("anyOf", []) if b != {"type": "null"}]
        node = {k: v for k, v in node.items() if k not in ("default", "anyOf")}
        if len(branches) == 1:
            node = {**branches[0], **node}
        elif branches:
            node["anyOf"] = branches
    if node.get("pattern") in (SLUG_PATTERN, MEMBER_PATTERN):
        node = {k: v for k, v in node.items() if k not in SLUG_LIMITS}
    lean = {}
    for key, value in node.items():
        if key == "title" or (key == "$defs" and top):
            continue
        if key == "additionalProperties" and value is True:
            continue
        if key == "minLength" and value == 1:
            continue  # "not empty": a model does not send an empty id or text anyway
        if key == "pattern" and value == UUID_PATTERN:
            lean["format"] = "uuid"
        elif key in SCHEMA_MAPS and isinstance(value, dict):
            lean[key] = {name: _lean(sub, defs, inline) for name, sub in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            lean[key] = [_lean(sub, defs, inline) for sub in value]
        elif key in SCHEMA_VALUES and isinstance(value, dict):
            lean[key] = _lean(value, defs, inline)
        else:
            lean[key] = value
    patterns = lean.get("patternProperties", {})
    if len(patterns) == 1 and list(patterns.values()) == [{}]:
        # pydantic's dict[Key, Any]: any value under a key of a pattern, said with a schema
        # that constrains nothing (the Inspector's untyped-schema). The key's pattern says it.
        (pattern,) = patterns
        del lean["patternProperties"]
        lean["propertyNames"] = {**lean.get("propertyNames", {}), "pattern": pattern}
    return lean


def exists(name: str) -> bool:
    return name in REGISTRY


# The compact profile (models.ToolProfile): for assistants that pay for every tool
# definition in every conversation. Search and the schema find what is there, and the
# generic `attio_request` reaches every other Attio operation.
COMPACT = {
    "whoami",
    "search_records",
    "list_objects",
    "list_attributes",
    "list_lists",
    "find_attio_operation",
    "attio_request",
}


def in_profile(name: str | None, profile: str) -> bool:
    """Whether a key or app with this tool profile is shown the tool and may call it."""
    return profile != "compact" or name in COMPACT


def is_read_only(name: str | None) -> bool:
    spec = REGISTRY.get(name or "")
    return spec is not None and bool(spec.annotations.read_only_hint)


# The areas register their tools as they are imported, in the order tools/list shows
# them (the order clients have seen so far), so these imports stay in this order.
# isort: off
from . import schema, records, notes, tasks, lists, members, comments, schema_changes  # noqa: E402, F401
from . import bulk, meetings, api  # noqa: E402, F401

# isort: on

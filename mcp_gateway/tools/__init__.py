"""The MCP tools, one module per Attio area, and the catalogue they register in.

Each tool takes the Caller (auth.py: the key, its owner and connection) as its first
argument, calls `connections.attio` through `_call.call_attio`, and shapes the result.
The modules whose names start with an underscore hold what the areas share: `_call`
(the caller's connection, the Attio call, error mapping, slug help), `_arguments`
(argument types, and the wording for arguments that don't fit) and `_results` (shaping
Attio's answers, the paged result).
"""

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

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


def exists(name: str) -> bool:
    return name in REGISTRY


def is_read_only(name: str | None) -> bool:
    spec = REGISTRY.get(name or "")
    return spec is not None and bool(spec.annotations.read_only_hint)


# The areas register their tools as they are imported, in the order tools/list shows
# them (the order clients have seen so far), so these imports stay in this order.
# isort: off
from . import schema, records, notes, tasks, lists, members, comments  # noqa: E402, F401

# isort: on

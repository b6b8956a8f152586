"""The gateway fixtures, for hostile tests that call tools through MCP."""

from tests.mcp_gateway.conftest import (  # noqa: F401 - fixtures, found by name
    alice_key,
    attio_calls_follow_spec,
    call_tool,
    gateway,
    make_key,
    mcp,
    run_tools,
    tools_built_once,
)

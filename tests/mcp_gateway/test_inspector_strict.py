"""The MCP Inspector's own `--strict` schema-portability check (tests/inspector.py) run
against /mcp on a loopback port, for each kind of key: no finding of either severity.
test_tool_list_size.py checks the same rules in Python on every definition; this runs
the real thing, and shows that it does find what it looks for."""

import pytest

from mcp_gateway import tools
from mcp_gateway.models import ToolProfile
from tests import inspector

pytestmark = pytest.mark.usefixtures("attio_calls_follow_spec", "inspector_installed")


@pytest.fixture(scope="module")
def inspector_installed():
    try:
        inspector.installed()
    except inspector.InspectorUnavailable as why:
        pytest.skip(f"the MCP Inspector could not be installed from npm: {why}")


@pytest.mark.parametrize(
    "options",
    [{}, {"read_only": True}, {"tool_profile": ToolProfile.COMPACT}],
    ids=["read-write", "read-only", "compact"],
)
def test_the_inspector_finds_nothing_to_flag_in_tools_list(
    portal, alice_connection, make_key, options
):
    _, key = make_key(alice_connection, **options)

    listed, done = inspector.tools_list(f"{portal}/mcp", key)

    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # --strict writes each finding, and a count, here
    names = {t["name"] for t in listed}
    if options.get("tool_profile") == ToolProfile.COMPACT:
        assert names == set(tools.COMPACT)
    elif options.get("read_only"):
        assert "whoami" in names and "create_record" not in names
    else:
        assert names == set(tools.REGISTRY)


def test_the_inspector_flags_what_its_rules_forbid(portal, alice_key, monkeypatch):
    """The same run, with a type union and an untyped property slipped into two tools."""
    lean = tools.definitions

    def flawed(listed):
        definitions = lean(listed)
        definitions[0].input_schema["properties"]["odd"] = {"type": ["string", "null"]}
        definitions[1].input_schema["properties"]["odd"] = {}
        return definitions

    monkeypatch.setattr(tools, "definitions", flawed)

    _, done = inspector.tools_list(f"{portal}/mcp", alice_key[1])

    assert "0 errors, 2 warnings across 2 tools" in done.stderr
    assert "`type` is an array" in done.stderr and "no validation keyword" in done.stderr

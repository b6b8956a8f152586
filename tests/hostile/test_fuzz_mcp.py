"""Thousands of malformed MCP requests and tool arguments: never a 500, never a trace."""

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connections import attio
from mcp_gateway.tools import REGISTRY

from ..mcp_gateway.in_thread import gateway_in_a_thread

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
methods = st.sampled_from(
    ["initialize", "tools/list", "tools/call", "ping", "resources/list", "prompts/list"]
) | st.text(max_size=20)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": methods},
    optional={"id": st.integers() | st.text(max_size=8) | st.none(), "params": json_values},
)
tool_calls = st.builds(
    lambda name, args: {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    },
    st.sampled_from(sorted(REGISTRY)) | st.text(max_size=20),
    st.dictionaries(st.text(max_size=16), json_values, max_size=5) | json_values,
)
bodies = st.one_of(
    json_values.map(lambda v: httpx.Request("POST", "/", json=v).content),
    messages.map(lambda m: httpx.Request("POST", "/", json=m).content),
    st.lists(messages, max_size=3).map(lambda m: httpx.Request("POST", "/", json=m).content),
    st.binary(max_size=200),
)


@pytest.fixture
def live_gateway(transactional_db, fake_attio, monkeypatch, alice_connection, caplog):
    """The gateway on a loopback port, in a thread; the fake Attio answers its calls.

    On the way out, after the server has stopped (and written its audit trail), no error
    may have been logged by the gateway: what it answered well must also be recorded.
    """
    from mcp_gateway.models import ApiKey

    monkeypatch.setattr(attio, "async_transport", fake_attio.async_transport())
    attio._async_clients.clear()
    _, plaintext = ApiKey.objects.issue(
        alice_connection.owner, connection=alice_connection, name="fuzz"
    )
    with (
        gateway_in_a_thread() as base_url,
        httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {plaintext}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
            timeout=30,
        ) as client,
    ):
        yield client
    records = caplog.get_records("call") + caplog.records  # the test's, and the shutdown's
    errors = [r for r in records if r.name.startswith("mcp_gateway") and r.levelno >= 40]
    assert not errors, [r.getMessage() for r in errors]


def assert_no_crash(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=bodies)
def test_malformed_json_rpc_never_crashes(live_gateway, body):
    assert_no_crash(live_gateway.post("/mcp", content=body))


@FUZZ
@given(message=tool_calls)
# A NUL in the tool's name: JSON carries it, PostgreSQL's text columns refuse it.
@example(message={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a\x00b"}})
def test_arbitrary_tool_arguments_never_crash(live_gateway, message):
    response = live_gateway.post("/mcp", json=message)
    assert_no_crash(response)
    if response.status_code == 200:
        result = response.json()
        assert "result" in result or "error" in result


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Authorization",
                "Content-Type",
                "Accept",
                "Origin",
                "Mcp-Session-Id",
                "Mcp-Protocol-Version",
            ]
        ),
        # Values HTTP itself can carry (no surrounding whitespace).
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
            str.strip
        ),
    )
)
def test_arbitrary_headers_never_crash(live_gateway, headers):
    response = live_gateway.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers=headers,
    )
    assert_no_crash(response)

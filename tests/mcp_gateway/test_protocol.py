"""Bad input at the HTTP and JSON-RPC level gets a proper error, never a 500."""

import json

import pytest

from mcp_gateway.models import ToolCall

from .test_endpoint import INITIALIZE, JSON


@pytest.fixture
def post(raw, alice_key):
    _, plaintext = alice_key

    def post(body, *, headers=None, raw_body: bytes | None = None):
        all_headers = {**JSON, "Authorization": f"Bearer {plaintext}", **(headers or {})}
        if raw_body is not None:
            return raw("POST", "/mcp", content=raw_body, headers=all_headers)
        return raw("POST", "/mcp", json=body, headers=all_headers)

    return post


def rpc(method: str, params: dict | None = None, id_: int = 7) -> dict:
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return message


def assert_clean_error(response, *, statuses=(400, 404, 405, 406, 413, 415)):
    assert response.status_code != 500
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    if response.status_code == 200:
        body = response.json()
        assert "error" in body or body.get("result", {}).get("isError"), body
    else:
        assert response.status_code in statuses, (response.status_code, text)


@pytest.mark.parametrize(
    "raw_body",
    [b"{not json", b"", b"[]", b"null", b'"text"', b'{"jsonrpc": "2.0"}', b"\xff\xfe"],
    ids=["broken", "empty", "empty-batch", "null", "string", "no-method", "not-utf8"],
)
def test_malformed_json_rpc_gets_an_error(post, raw_body):
    assert_clean_error(post(None, raw_body=raw_body))


def test_wrong_content_type_gets_an_error(post):
    response = post(
        None, raw_body=json.dumps(INITIALIZE).encode(), headers={"Content-Type": "text/plain"}
    )
    assert_clean_error(response)


def test_oversized_body_is_refused(post, settings):
    big = json.dumps({**INITIALIZE, "pad": "x" * (settings.MCP_MAX_REQUEST_BYTES + 10)})
    response = post(None, raw_body=big.encode())
    assert_clean_error(response)
    assert response.status_code == 413


def test_unknown_method_is_method_not_found(post):
    response = post(rpc("no/such/method"))
    assert_clean_error(response)


def test_unknown_tool_is_a_tool_error(post):
    response = post(rpc("tools/call", {"name": "no_such_tool", "arguments": {}}))
    assert_clean_error(response)


def test_a_tool_name_with_a_nul_is_refused_and_audited(post):
    # JSON carries a NUL; PostgreSQL's text columns refuse it.
    message = rpc("tools/call", {"name": "who\x00ami", "arguments": {}})
    assert_clean_error(post(message))
    assert_clean_error(post(rpc("tools/call", {"name": "no_such_tool", "arguments": {}})))
    calls = ToolCall.objects.order_by("pk")
    assert [(c.tool, c.ok) for c in calls] == [("whoami", False), ("no_such_tool", False)]


def test_a_lone_surrogate_is_a_parse_error(post):
    message = json.dumps(rpc("tools/call", {"name": "whoami\ud800", "arguments": {}}))
    response = post(None, raw_body=message.encode())
    assert_clean_error(response)
    assert response.status_code == 400 and not ToolCall.objects.exists()


def test_tool_call_with_wrong_argument_types_is_a_tool_error(post):
    response = post(rpc("tools/call", {"name": "whoami", "arguments": "not an object"}))
    assert_clean_error(response)


def test_get_on_mcp_in_stateless_mode_is_not_a_500(raw, alice_key):
    _, plaintext = alice_key
    response = raw(
        "GET",
        "/mcp",
        headers={"Authorization": f"Bearer {plaintext}", "Accept": "text/event-stream"},
    )
    assert_clean_error(response)


def test_wrong_host_is_refused(raw, alice_key):
    _, plaintext = alice_key
    response = raw(
        "POST",
        "/mcp",
        json=INITIALIZE,
        headers={**JSON, "Authorization": f"Bearer {plaintext}", "Host": "evil.example"},
    )
    assert response.status_code == 421


def test_wrong_origin_is_refused(raw, alice_key):
    _, plaintext = alice_key
    response = raw(
        "POST",
        "/mcp",
        json=INITIALIZE,
        headers={**JSON, "Authorization": f"Bearer {plaintext}", "Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_configured_public_host_is_accepted(raw, alice_key, settings):
    _, plaintext = alice_key
    response = raw(
        "POST",
        "/mcp",
        json=INITIALIZE,
        headers={**JSON, "Authorization": f"Bearer {plaintext}", "Host": "localhost:8000"},
    )
    assert response.status_code == 200

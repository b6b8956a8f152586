"""A client that sends its request body slowly, or never, is cut off (over real HTTP)."""

import json
import logging
import socket
import time

import httpx
import pytest

from mcp_gateway.models import ToolCall

from .in_thread import gateway_in_a_thread


@pytest.mark.parametrize("sent", [b"", b'{"jsonrpc": "2.0", '])
def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(
    gateway, settings, alice_key, sent
):
    settings.MCP_BODY_TIMEOUT_SECONDS = 0.5
    _, plaintext = alice_key
    with gateway_in_a_thread() as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                + f"Authorization: Bearer {plaintext}\r\n".encode()
                + b"Content-Length: 1000\r\n\r\n"
                + sent
            )
            started = time.monotonic()
            answer = b""
            while chunk := conn.recv(65536):  # until the server closes the connection
                answer += chunk
            waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer
    assert 0.4 < waited < 5


@pytest.mark.usefixtures("attio_calls_follow_spec")
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "event stream"])
def test_a_client_that_goes_away_mid_call_leaves_no_error_in_the_log(
    gateway, alice_key, fake_attio, caplog, streamed
):
    """Nothing to log above INFO. Answered with JSON, the call goes on to its end (the
    answer has nowhere to go); with an event stream the SDK stops it when the client goes,
    and it is audited as cancelled."""
    fake_attio.latency = 0.8
    _, plaintext = alice_key
    params = {"name": "whoami", "arguments": {}}
    if streamed:
        params["_meta"] = {"progressToken": "p1"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    with caplog.at_level(logging.INFO), gateway_in_a_thread() as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                b"MCP-Protocol-Version: 2025-06-18\r\n"
                + f"Authorization: Bearer {plaintext}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            time.sleep(0.2)  # the call is waiting for Attio
        deadline = time.monotonic() + 10
        while not ToolCall.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    row = ToolCall.objects.get()
    assert row.tool == "whoami"
    if streamed:
        assert (row.ok, row.error_code) == (False, "cancelled")
    else:
        assert (row.ok, row.error_code) == (True, "")
        assert fake_attio.count("self") == 1  # the fake counts a call once it answers
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.usefixtures("attio_calls_follow_spec")
def test_a_bulk_write_stopped_by_its_client_going_away_audits_what_it_wrote(
    gateway, alice_key, fake_attio
):
    _, plaintext = alice_key
    records = [{"domains": f"gone{n}.com", "name": f"Gone {n}"} for n in range(6)]
    arguments = {"object": "companies", "matching_attribute": "domains", "records": records}
    headers = {
        "Authorization": f"Bearer {plaintext}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }

    def call(arguments, **params):
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
        message["params"] = {"name": "bulk_upsert_records", "arguments": arguments, **params}
        return message

    with gateway_in_a_thread() as base, httpx.Client(base_url=base, headers=headers) as http:
        preview = http.post("/mcp", json=call(arguments)).json()["result"]
        fingerprint = preview["structuredContent"]["preview"]["fingerprint"]
        confirmed = call({**arguments, "confirm": fingerprint}, _meta={"progressToken": "p"})
        with http.stream("POST", "/mcp", json=confirmed) as answer:
            for line in answer.iter_lines():
                if '"notifications/progress"' in line and '"progress":2' in line:
                    break  # two items written: the client goes away
        deadline = time.monotonic() + 10
        while not ToolCall.objects.filter(error_code="cancelled").exists():
            assert time.monotonic() < deadline, "no audit row for the stopped call"
            time.sleep(0.05)

    row = ToolCall.objects.get(error_code="cancelled")
    written = [c for c in fake_attio.calls_to("records.assert") if c.status == 200]
    assert 2 <= len(written) < 6
    assert len(row.record_ids) == len(written)

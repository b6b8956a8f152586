"""A client that sends its request body slowly, or never, is cut off (over real HTTP)."""

import socket
import time

import pytest

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

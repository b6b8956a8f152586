"""The gateway's calls to Attio over the transport production uses (aiohttp under httpx).

Every other gateway test plugs the fake Attio in at httpx's transport, in process; these
serve it on a loopback port instead, so what crosses the socket is aiohttp's doing:
bodies, query strings, headers, and how each kind of failure ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import pytest

from connections import attio
from connections.attio import AttioError


@pytest.fixture
def production_transport(monkeypatch):
    """No test transport: the gateway's pool is made with `attio.gateway_transport()`."""
    monkeypatch.setattr(attio, "async_transport", None)
    attio._async_clients.clear()
    yield
    attio._async_clients.clear()


@pytest.fixture
def served(fake_attio, production_transport, settings):
    """The fake Attio on loopback, reached through `attio.gateway_transport()`."""
    fake_attio.server_hang_seconds = 3.0
    with fake_attio.serve() as url:
        settings.ATTIO_API_BASE_URL = url
        yield fake_attio


def short_timeouts(monkeypatch) -> None:
    """Attio's timeouts at half a second (the client is made on the next call)."""
    monkeypatch.setattr(attio, "TIMEOUT", httpx.Timeout(0.5))
    attio._async_clients.clear()


def run(call):
    """Run `call()` on a loop of its own, closing the pool before the loop ends."""

    async def go():
        try:
            return await call()
        finally:
            await attio.aclose_clients()

    return asyncio.run(go())


def ada_of(fake) -> str:
    return fake.record_id("people", "Ada Lovelace")


def test_the_gateways_pool_is_aiohttps_unless_a_test_plugs_in_its_own(served):
    async def pool():
        return attio.async_client()._transport

    assert type(run(pool)).__module__.startswith("httpx_aiohttp")


def test_a_read_a_query_and_a_write_cross_the_socket_intact(served):
    token = served.add_api_key()
    ada = ada_of(served)

    async def calls():
        record = await attio.aget_record(token, "people", ada)
        found = await attio.aquery_records(
            token, "people", filter={"name": {"$contains": "Ada"}}, sorts=None, limit=5, offset=0
        )
        note = await attio.acreate_note(
            token, "people", ada, "Met at the “Analytical” café", "Notes: ünïcode", "plaintext"
        )
        return record, found, note

    record, found, note = run(calls)
    assert record["id"]["record_id"] == ada
    assert [r["id"]["record_id"] for r in found] == [ada]
    assert note["title"] == "Met at the “Analytical” café"
    sent = served.last("notes.create")
    assert sent.json["data"]["content"] == "Notes: ünïcode"
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.headers["user-agent"] == attio.USER_AGENT
    assert served.spec_violations == []


def test_query_parameters_are_encoded_as_httpx_would(served):
    token = served.add_api_key()

    async def search():
        return await attio.arequest(
            "GET", "/v2/tasks", token, params={"assignee": "ada+crm&co@example.com", "limit": 2}
        )

    run(search)
    call = served.last("tasks.list")
    assert call.query == {"assignee": "ada+crm&co@example.com", "limit": "2"}
    assert served.spec_violations == []


def test_a_rate_limit_is_waited_out_and_the_call_made_once_more(served):
    token = served.add_api_key()
    served.rate_limit_next("records.get", retry_after=1, http_date=False)

    record = run(lambda: attio.aget_record(token, "people", ada_of(served)))

    assert record["id"]["record_id"] == ada_of(served)
    assert [c.status for c in served.calls_to("records.get")] == [429, 200]


def test_a_read_that_times_out_is_tried_three_times_then_says_so(served, monkeypatch):
    short_timeouts(monkeypatch)
    token = served.add_api_key()
    served.fail_next("records.get", exception=httpx.ReadTimeout, times=3)

    with pytest.raises(AttioError) as caught:
        run(lambda: attio.aget_record(token, "people", ada_of(served)))

    assert str(caught.value) == "Attio timed out"
    assert "Timeout" in caught.value.code
    assert served.count("records.get") == 3


def test_a_write_whose_answer_is_lost_is_not_sent_again(served):
    token = served.add_api_key()
    ada = ada_of(served)
    served.fail_next("notes.create", exception=httpx.RemoteProtocolError("reset"))

    with pytest.raises(AttioError) as caught:
        run(lambda: attio.acreate_note(token, "people", ada, "Once", "", "plaintext"))

    assert str(caught.value) == "Attio could not be reached"
    assert served.count("notes.create") == 1


def test_a_write_whose_timeout_comes_after_sending_is_not_sent_again(served, monkeypatch):
    short_timeouts(monkeypatch)
    token = served.add_api_key()
    ada = ada_of(served)
    served.fail_next("notes.create", exception=httpx.ReadTimeout)

    with pytest.raises(AttioError) as caught:
        run(lambda: attio.acreate_note(token, "people", ada, "Once", "", "plaintext"))

    assert str(caught.value) == "Attio timed out"
    assert served.count("notes.create") == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_write_refused_a_connection_reached_nobody_so_goes_again(
    fake_attio, production_transport, monkeypatch, settings
):
    # Attio comes up once the first attempt has been refused: the write is tried again
    # (nothing was sent) and lands once.
    port = free_port()
    settings.ATTIO_API_BASE_URL = f"http://127.0.0.1:{port}"
    token = fake_attio.add_api_key()
    ada = ada_of(fake_attio)
    refusals = []
    later = contextlib.ExitStack()
    judged_by = attio.reached_nobody

    def reached_nobody(exc):
        refusals.append(exc)
        if len(refusals) == 1:
            later.enter_context(fake_attio.serve(port=port))
        return judged_by(exc)

    monkeypatch.setattr(attio, "reached_nobody", reached_nobody)
    with later:
        note = run(lambda: attio.acreate_note(token, "people", ada, "Retried", "", "plaintext"))

    assert note["title"] == "Retried"
    assert len(refusals) == 1 and judged_by(refusals[0])
    assert fake_attio.count("notes.create") == 1


def test_attio_away_ends_as_could_not_be_reached(fake_attio, production_transport, settings):
    settings.ATTIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    token = fake_attio.add_api_key()

    with pytest.raises(AttioError) as caught:
        run(lambda: attio.aget_self(token))

    assert str(caught.value) == "Attio could not be reached"
    assert caught.value.code == "ClientConnectorError"
    assert token not in repr(caught.value)


@pytest.fixture
def raw_attio(production_transport, settings):
    """`raw_attio(answer, call)`: run `call()` against a plain asyncio server whose every
    connection is handled by `answer(reader, writer, requests)`, on the production
    transport; answer what `call()` answered (or raise what it raised) and the request
    lines the server read."""

    def serve(answer, call):
        requests: list[bytes] = []

        async def served_call():
            server = await asyncio.start_server(lambda r, w: answer(r, w, requests), "127.0.0.1", 0)
            settings.ATTIO_API_BASE_URL = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with server:
                return await call()

        try:
            return run(served_call), requests
        except AttioError as e:
            e.requests = requests
            raise

    return serve


async def read_request_line(reader, requests) -> None:
    requests.append(await reader.readline())
    while await reader.readline() not in (b"\r\n", b""):
        pass


def test_an_answer_that_is_not_http_is_an_attio_error(raw_attio, fake_attio):
    token = fake_attio.add_api_key()

    async def not_http(reader, writer, requests):
        await read_request_line(reader, requests)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    with pytest.raises(AttioError) as caught:
        raw_attio(not_http, lambda: attio.aget_self(token))

    assert str(caught.value) == "Attio could not be reached"


async def hang_up(reader, writer, requests):
    # Reads the request, then closes the connection without a word.
    await read_request_line(reader, requests)
    writer.close()


@pytest.mark.parametrize("method", ["DELETE", "PUT", "POST"])
def test_a_write_whose_connection_drops_before_any_answer_is_sent_once(
    raw_attio, fake_attio, method
):
    # aiohttp by itself sends a PUT or DELETE again when this happens.
    token = fake_attio.add_api_key()

    with pytest.raises(AttioError) as caught:
        raw_attio(hang_up, lambda: attio.arequest(method, "/v2/notes/n1", token, json={}))

    assert str(caught.value) == "Attio could not be reached"
    assert [line.split()[0] for line in caught.value.requests] == [method.encode()]


def test_a_read_whose_connection_drops_is_tried_three_times(raw_attio, fake_attio):
    token = fake_attio.add_api_key()

    with pytest.raises(AttioError) as caught:
        raw_attio(hang_up, lambda: attio.arequest("GET", "/v2/objects", token))

    assert len(caught.value.requests) == attio.READ_ATTEMPTS


def test_a_peer_that_stops_reading_a_write_ends_it_as_timed_out(raw_attio, fake_attio, monkeypatch):
    # aiohttp times connecting and reading, not sending: the attempt's own bound ends it.
    short_timeouts(monkeypatch)
    token = fake_attio.add_api_key()
    body = {"data": {"content": "x" * 32_000_000}}  # more than the sockets' buffers hold

    async def never_reads(reader, writer, requests):
        requests.append(b"connected")
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(AttioError) as caught:
        raw_attio(never_reads, lambda: attio.arequest("POST", "/v2/notes", token, json=body))

    assert str(caught.value) == "Attio timed out"
    assert time.monotonic() - started < 10
    assert caught.value.requests == [b"connected"]


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def without_proxies(monkeypatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_the_proxy_from_the_environment_carries_the_calls(
    raw_attio, fake_attio, monkeypatch, settings
):
    without_proxies(monkeypatch)
    token = fake_attio.add_api_key()

    async def proxy(reader, writer, requests):
        await read_request_line(reader, requests)
        body = b'{"data": []}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async def call():
        # The proxy is this server; Attio is a name only the proxy would resolve.
        monkeypatch.setenv("HTTP_PROXY", settings.ATTIO_API_BASE_URL)
        settings.ATTIO_API_BASE_URL = "http://attio.invalid"
        return await attio.arequest("GET", "/v2/objects", token)

    answer, requests = raw_attio(proxy, call)

    assert answer == {"data": []}
    assert requests == [b"GET http://attio.invalid/v2/objects HTTP/1.1\r\n"]


def test_no_proxy_exempts_attio_as_httpx_would(monkeypatch):
    without_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert attio.environment_proxy("https://api.attio.com").url == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "api.attio.com")
    assert attio.environment_proxy("https://api.attio.com") is None
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("NO_PROXY")
    assert attio.environment_proxy("https://api.attio.com") is None


def test_closing_the_pools_closes_aiohttps_session(served):
    token = served.add_api_key()

    async def call_then_close():
        await attio.aget_self(token)
        session = attio.async_client()._transport.client
        await attio.aclose_clients()
        return session

    session = asyncio.run(call_then_close())
    assert session.closed
    assert attio._async_clients == {}

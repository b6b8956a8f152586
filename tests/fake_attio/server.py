"""Serve a FakeAttio over real HTTP: a plain ASGI app plus a threaded uvicorn helper.

The ASGI app turns each request into an ``httpx.Request``, runs it through the
same core as the in-process transports, and sends the ``httpx.Response`` back.
Injected exceptions cannot be raised across a socket, so in server mode:

- timeouts (``httpx.TimeoutException`` subclasses) hang the request until the
  client gives up, at most ``fake.server_hang_seconds`` or until shutdown;
- any other exception sends response headers and then closes the connection,
  which the client sees as ``httpx.RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .core import FakeAttio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class FakeAttioASGI:
    """ASGI application answering every host and path with a FakeAttio."""

    def __init__(self, fake: FakeAttio) -> None:
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = await self._to_httpx(scope, receive)
        ctx = self.fake.prepare(request)
        if ctx.delay:
            await asyncio.sleep(ctx.delay)
        fault = ctx.fault
        if fault is not None and fault.exception is not None:
            exc = fault.exception
            name = getattr(exc, "__name__", type(exc).__name__)
            if fault.apply_first:
                # The random-fault mode's "after apply": do the work, then lose the answer.
                self.fake.apply_before_fault(ctx)
            self.fake.record(ctx, None, error=name)
            is_timeout = isinstance(exc, httpx.TimeoutException) or (
                isinstance(exc, type) and issubclass(exc, httpx.TimeoutException)
            )
            if is_timeout:
                await self._hang()
            await self._drop(send)
            return
        response = self.fake.finish(ctx)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": list(response.headers.raw),
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _to_httpx(scope: Scope, receive: Receive) -> httpx.Request:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k.lower() == "host"), None)
        if host is None:
            server_host, server_port = scope.get("server") or ("localhost", 80)
            host = f"{server_host}:{server_port}"
        raw_path = scope.get("raw_path") or scope["path"].encode()
        url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        return httpx.Request(scope["method"], url, headers=headers, content=bytes(body))

    async def _hang(self) -> None:
        deadline = time.monotonic() + self.fake.server_hang_seconds
        while time.monotonic() < deadline and not self.fake.stopping.is_set():
            await asyncio.sleep(0.05)

    @staticmethod
    async def _drop(send: Send) -> None:
        # Promise a body, then return without it: uvicorn closes the connection.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1024"), (b"connection", b"close")],
            }
        )


def bind_socket(host: str = "127.0.0.1", port: int = 0, *, nodelay: bool = True) -> socket.socket:
    """A listening-ready socket; port 0 picks a free port.

    With ``nodelay`` the socket is made with ``IPPROTO_TCP``, so asyncio turns Nagle's
    algorithm off on accepted connections; otherwise (proto 0) it stays on and an answer
    can wait ~40 ms for the client's delayed ACK, which matters to latency measurements.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    proto = socket.IPPROTO_TCP if nodelay else 0
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def make_server(fake: FakeAttio, *, verbose: bool = False) -> Any:
    """A uvicorn.Server for the fake (not started).

    Quiet by default, and then it leaves the host process's logging configuration
    alone; ``verbose`` (the command line) uses uvicorn's own logging and access log.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    config = uvicorn.Config(
        fake.asgi_app,
        log_level="info" if verbose else "warning",
        log_config=LOGGING_CONFIG if verbose else None,
        access_log=verbose,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


@contextmanager
def serve(
    fake: FakeAttio, host: str = "127.0.0.1", port: int = 0, *, nodelay: bool = True
) -> Iterator[str]:
    """Run ``fake`` on ``host:port`` in a background thread; yield its base URL."""
    sock = bind_socket(host, port, nodelay=nodelay)
    server = make_server(fake)
    fake.stopping.clear()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-attio", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Attio server did not start")
            time.sleep(0.01)
        yield base_url_of(sock)
    finally:
        fake.stopping.set()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

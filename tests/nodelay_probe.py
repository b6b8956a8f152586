"""An ASGI app that answers with how this process's open TCP connections are set up, and
which process it is.

Served by `tests/test_serve.py` under uvicorn with several workers: whether Nagle's
algorithm is off can only be read from inside the worker, from its sockets.
"""

import gc
import json
import os
import socket


def connected_tcp_sockets() -> list[socket.socket]:
    found = []
    for thing in gc.get_objects():
        if isinstance(thing, socket.socket) and thing.fileno() != -1:
            if thing.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                thing.getpeername()
            except OSError:
                continue  # a listener
            found.append(thing)
    return found


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    nodelay = [
        s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0 for s in connected_tcp_sockets()
    ]
    workers = os.environ.get("PORTAL_WORKERS")
    body = json.dumps({"nodelay": nodelay, "pid": os.getpid(), "workers": workers}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})

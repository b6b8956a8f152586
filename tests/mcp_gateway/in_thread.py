"""The gateway served by uvicorn on a loopback port, in a thread of the test process."""

import contextlib
import threading
import time

import uvicorn

from attio_portal.asgi import dispatcher
from mcp_gateway.server import build_server, gateway_app

from ..faults.harness import free_port


@contextlib.contextmanager
def gateway_in_a_thread(port: int | None = None):
    """Yields the base URL; on leaving, stops the server (its lifespan runs to its end)."""
    port = port or free_port()
    config = uvicorn.Config(
        dispatcher(gateway_app(build_server())),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "the gateway did not stop"

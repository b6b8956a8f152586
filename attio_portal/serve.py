"""uvicorn's command line, with Nagle's algorithm off in every worker process, and every
worker taking its share of new connections (ReusePortServer).

    python -m attio_portal.serve attio_portal.asgi:application --workers 4 --lifespan on ...

It takes exactly uvicorn's options. With `--workers N`, uvicorn binds the listening socket
itself, without saying it is TCP (protocol 0), and hands it to the workers. Accepted
connections take their listener's protocol, and asyncio turns Nagle's algorithm off
(TCP_NODELAY) only on sockets that say TCP: so in the workers every answer's body waited
for the client's delayed ACK, ~40 ms more per request on a kept-alive connection
(bench/README.md, "Load and faults", Problem 1; uvicorn issue #3149). A single uvicorn
process is not affected, but goes through here too, so one command fits every deployment.
"""

import importlib
import os
import socket

from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn.supervisors import multiprocess

# The module: the package's own `uvicorn.main` attribute is the command, not the module.
uvicorn_main = importlib.import_module("uvicorn.main")

# Each worker listening on a socket of its own: see ReusePortServer.
REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


def tcp_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if REUSE_PORT:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class TcpListenerConfig(Config):
    """uvicorn's Config, whose listening socket (for --workers, --reload) says it is TCP,
    and, with several workers, may be bound again by each of them (SO_REUSEPORT).
    The workers are told how many they are (PORTAL_WORKERS, unless it is set already: the
    workers of several machines), to share what Attio allows a workspace
    (mcp_gateway/tools/bulk.py)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Made in the supervisor, before it starts the workers, which inherit it.
        os.environ.setdefault("PORTAL_WORKERS", str(self.workers))

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock  # a Unix socket or a given descriptor: as uvicorn made it
        if self.workers > 1 and REUSE_PORT:
            # Bound again, the same address, with SO_REUSEPORT set before the bind (the
            # workers' own sockets can only join a group the first one is in).
            address = sock.getsockname()
            sock.close()
            sock = tcp_socket(sock.family)
            sock.bind(address)
            sock.set_inheritable(True)
        elif sock.proto == 0:
            # The same socket (same descriptor, bound, inheritable), described as TCP.
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock


class ReusePortServer(Server):
    """A uvicorn worker that listens on a socket of its own.

    With uvicorn's --workers N, every worker accepts from the one socket the supervisor
    bound, and the worker whose event loop wakes first takes every connection waiting: a
    client that opens its connections at once and keeps them (a proxy's upstream pool, an
    agent framework's HTTP client) ended up on one worker, the others idle (bench/README.md,
    "Workers"). Here each worker binds its own socket to the same address with
    SO_REUSEPORT, and the kernel spreads new connections over them. The supervisor's
    socket, bound but never listened on, takes none.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is not None and self.config.workers > 1 and REUSE_PORT:
            own = []
            for shared in sockets:
                sock = tcp_socket(shared.family)
                sock.bind(shared.getsockname())
                own.append(sock)
            sockets = own
        await super().startup(sockets=sockets)


# uvicorn's supervisor makes each worker's Server in the worker, by this module-level name.
# A worker imports this module when it unpickles its TcpListenerConfig, before it makes
# its Server: so every worker gets a ReusePortServer.
multiprocess.Server = ReusePortServer


def main() -> None:
    # uvicorn's command builds its Config through this module-level name.
    uvicorn_main.Config = TcpListenerConfig
    uvicorn_main.main()


if __name__ == "__main__":
    main()

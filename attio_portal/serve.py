"""uvicorn's command line, with Nagle's algorithm off in every worker process.

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
import socket

from uvicorn.config import Config

# The module: the package's own `uvicorn.main` attribute is the command, not the module.
uvicorn_main = importlib.import_module("uvicorn.main")


class TcpListenerConfig(Config):
    """uvicorn's Config, whose listening socket (for --workers, --reload) says it is TCP."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            # The same socket (same descriptor, bound, inheritable), described as TCP.
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock


def main() -> None:
    # uvicorn's command builds its Config through this module-level name.
    uvicorn_main.Config = TcpListenerConfig
    uvicorn_main.main()


if __name__ == "__main__":
    main()

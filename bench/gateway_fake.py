"""The fake Attio for the gateway benchmark, served in a process of its own.

    python -m bench.gateway_fake --token TOKEN [--latency 0] [--port 0]

The same ``FakeAttio`` that ``python -m tests.fake_attio --no-strict-spec --api-key TOKEN``
serves (its two seeded workspaces; TOKEN is a workspace API key of the first, "acme"), with
two differences that matter for a latency benchmark:

- the listening socket is made with ``IPPROTO_TCP``, so asyncio turns Nagle's algorithm off
  on accepted connections. Without that, every answer waits ~40 ms for the client's delayed
  ACK: a GET through ``python -m tests.fake_attio`` (Nagle on unless ``--nodelay``)
  measured 47.9 ms p50 here, which would drown the few milliseconds compared;
- no access log (the command line logs every request unless ``--quiet``).

(``python -m tests.fake_attio --quiet --nodelay`` has since become equivalent; this file
also prints the seeded record's id for the load script.)

It prints ``BASE_URL <url>`` and ``RECORD <id of the seeded person "Ada Lovelace">``.
"""

from __future__ import annotations

import argparse
import sys

from tests.fake_attio import FakeAttio
from tests.fake_attio.server import base_url_of, bind_socket, make_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_fake")
    parser.add_argument("--token", required=True, help="a workspace API key to accept")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    fake = FakeAttio(strict_spec=False, latency=args.latency)
    fake.add_api_key(token=args.token)
    sock = bind_socket("127.0.0.1", args.port, nodelay=True)
    print(f"BASE_URL {base_url_of(sock)}", flush=True)
    print(f"RECORD {fake.record_id('people', 'Ada Lovelace')}", flush=True)
    make_server(fake).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())

"""What each part of the gateway costs: CPU per call with parts taken out, in one process.

    .venv/bin/python bench/gateway_parts.py [--calls 800] [--rounds 6] [--extra-keys 1000]

bench/gateway.py compares the gateway with the SDK's floor through uvicorn and wrk, where
four processes share two cores and the ratios move by ±0.1x between runs. This script asks
a narrower question with less noise: how much CPU does each part of the gateway add? It
calls the ASGI apps directly (no uvicorn, no HTTP parsing, no load generator), one
`tools/call` of `get_record` at a time, the Attio GET still going to the fake on loopback,
and reads `time.process_time()` around each run. Variants, interleaved round by round:

- floor: `bench/gateway_floor.py`, the bare `MCPServer`;
- gateway: `attio_portal.asgi`'s MCP app as it runs in production;
- no key query: the same, but the key check returns a key read once beforehand;
- ... and no policy: without the policy middleware (`mcp_gateway/policy.py`: limits, audit
  trail);
- ... and no portal wrappers: the SDK's app alone, without `mcp_gateway/http.py`'s checks.

It prints every run and then, per variant, the minimum and the median of the rounds (the
minimum is the least disturbed by other work on the machine). Same database and fake
setup as bench/gateway.py (a database of its own, dropped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gateway as bench_gateway  # noqa: E402
from bench.support import drop_database, recreate_database  # noqa: E402
from tests.faults.harness import stop  # noqa: E402

PORTAL_PORT = 8000  # only named in the requests' Host header and PORTAL_BASE_URL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=800, help="calls per measured run")
    p.add_argument("--warmup", type=int, default=200, help="calls before each run")
    p.add_argument("--rounds", type=int, default=6, help="runs of every variant")
    p.add_argument("--extra-keys", type=int, default=1000, help="keys besides the bench key")
    p.add_argument("--database", default="portal_bench_parts")
    p.add_argument("--admin-url", default=bench_gateway.ADMIN_URL)
    return p.parse_args(argv)


class Caller:
    """Calls an ASGI app with the benchmark's `tools/call` POST and checks the answer."""

    def __init__(self, record_id: str, api_key: str | None) -> None:
        self.record_id = record_id.encode()
        self.body = bench_gateway.request_body(record_id).encode()
        self.headers = [
            (name.lower().encode(), value.encode())
            for name, value in bench_gateway.base_headers().items()
        ] + [(b"host", f"127.0.0.1:{PORTAL_PORT}".encode())]
        if api_key:
            self.headers.append((b"authorization", f"Bearer {api_key}".encode()))

    async def call(self, app) -> None:
        sent: list[dict] = []
        delivered = False

        async def receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "query_string": b"",
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", PORTAL_PORT),
        }
        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent[1:])
        if sent[0]["status"] != 200 or self.record_id not in body or b'"isError":true' in body:
            raise RuntimeError(f"unexpected answer {sent[0]['status']}: {body[:300]!r}")


def floor_app():
    """A fresh floor (the SDK's session manager runs once per server instance)."""
    from bench import gateway_floor

    floor = importlib.reload(gateway_floor)
    return floor.app, floor.server.session_manager


def gateway_app(key, *, key_query: bool, policy: bool, wrappers: bool):
    from attio_portal.asgi import dispatcher
    from mcp_gateway import auth, server
    from mcp_gateway.policy import middleware as policy_middleware

    class KeyReadBeforehand(auth.CredentialChecks):
        async def check(self, presented: str):
            return key

    make_key_checks = auth.credential_checks
    if not key_query:
        auth.credential_checks = KeyReadBeforehand
    try:
        mcp_server = server.build_server()
    finally:
        auth.credential_checks = make_key_checks
    if not policy:
        mcp_server.middleware.remove(policy_middleware)
    app = server.gateway_app(mcp_server) if wrappers else server.build_app(mcp_server)
    return dispatcher(app), mcp_server.session_manager


async def cpu_per_call(app, session_manager, caller: Caller, calls: int, warmup: int) -> float:
    try:
        async with session_manager.run():
            for _ in range(warmup):
                await caller.call(app)
            started = time.process_time()
            for _ in range(calls):
                await caller.call(app)
            return (time.process_time() - started) / calls * 1000
    finally:
        # The apps' lifespans (which close their Attio pools) do not run here.
        await close_attio_pools()


async def close_attio_pools() -> None:
    from bench import gateway_floor
    from connections import attio

    await attio.aclose_clients()
    if gateway_floor._client is not None:
        await gateway_floor._client.aclose()
        gateway_floor._client = None


async def read_key(plaintext: str):
    from mcp_gateway import auth

    key_checks = auth.credential_checks()
    async with key_checks.running():
        return await key_checks.check(plaintext)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = "bench_" + secrets.token_urlsafe(24)
    fake = bench_gateway.Fake(token, 0.0)
    recreate_database(args)
    try:
        # bench/gateway.py's setup: the portal's settings (this process), migrate, seed.
        bench_gateway.configure(args, fake, PORTAL_PORT)
        seeded = bench_gateway.seed(args, fake, token)
        os.environ["FLOOR_ATTIO_URL"] = fake.url
        os.environ["FLOOR_ATTIO_TOKEN"] = token
        from django.db import connections

        connections.close_all()
        key = asyncio.run(read_key(seeded.key))

        variants = {
            "floor": lambda: floor_app(),
            "gateway": lambda: gateway_app(key, key_query=True, policy=True, wrappers=True),
            "no key query": lambda: gateway_app(key, key_query=False, policy=True, wrappers=True),
            "... and no policy": lambda: gateway_app(
                key, key_query=False, policy=False, wrappers=True
            ),
            "... and no portal wrappers": lambda: gateway_app(
                key, key_query=False, policy=False, wrappers=False
            ),
        }
        callers = {
            name: Caller(fake.record_id, None if name == "floor" else seeded.key)
            for name in variants
        }
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(1, args.rounds + 1):
            for name, make in variants.items():
                app, session_manager = make()
                ms = asyncio.run(
                    cpu_per_call(app, session_manager, callers[name], args.calls, args.warmup)
                )
                cpu[name].append(ms)
                print(f"round {round_number} {name:28s} {ms:.3f} ms CPU/call", flush=True)

        print("\n| variant | min ms CPU/call | median ms CPU/call |\n| --- | ---: | ---: |")
        for name, values in cpu.items():
            print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} |")
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(args)
        stop(fake.proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

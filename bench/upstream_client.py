"""What one GET to Attio costs the gateway's process in its HTTP client, side by side
against the same fake Attio: httpx with its own pool, httpx over aiohttp (httpx_aiohttp's
transport, what connections/attio.py's gateway_transport uses), and aiohttp alone.

    .venv/bin/python bench/upstream_client.py [--calls 3000] [--rounds 5] [--concurrency 1,16]

The fake is
bench/gateway_fake.py in a process of its own (latency 0); each client does the GET
`get_record` makes (the record, with the bearer token, JSON parsed), with its pool kept
open across calls, as the gateway's shared client does. CPU is this process's
(time.process_time), per call, the minimum over the rounds; the clients alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_fake(token: str) -> tuple[subprocess.Popen, str, str]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_fake", "--token", token],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = fake.stdout.readline().split()[1]
    record = fake.stdout.readline().split()[1]
    return fake, url, record


async def with_httpx(url: str, token: str, path: str, calls: int, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers) as client:
        await run(lambda: get_httpx(client, path), calls, concurrency)


async def get_httpx(client, path: str) -> None:
    response = await client.get(path)
    response.raise_for_status()
    response.json()


async def with_httpx_on_aiohttp(url: str, token: str, path: str, calls: int, concurrency: int):
    import httpx
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    headers = {"Authorization": f"Bearer {token}"}
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(base_url=url, headers=headers, transport=transport) as client:
        await run(lambda: get_httpx(client, path), calls, concurrency)


async def with_aiohttp(url: str, token: str, path: str, calls: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=100)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
        await run(lambda: get_aiohttp(session, path), calls, concurrency)


async def get_aiohttp(session, path: str) -> None:
    async with session.get(path) as response:
        response.raise_for_status()
        await response.json()


async def run(call, calls: int, concurrency: int) -> None:
    remaining = calls

    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    token = "bench_" + secrets.token_hex(29)
    fake, url, record = start_fake(token)
    path = f"/v2/objects/people/records/{record}"
    clients = {
        "httpx": with_httpx,
        "httpx on aiohttp": with_httpx_on_aiohttp,
        "aiohttp": with_aiohttp,
    }
    try:
        time.sleep(1.0)
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            best: dict[str, float] = {}
            for _ in range(args.rounds):
                for name, client in clients.items():
                    started = time.process_time()
                    asyncio.run(client(url, token, path, args.calls, concurrency))
                    per_call = (time.process_time() - started) / args.calls * 1000
                    best[name] = min(best.get(name, per_call), per_call)
            print(
                f"c={concurrency}: CPU ms per GET, min of {args.rounds} rounds of "
                f"{args.calls}: "
                + ", ".join(f"{name} {ms:.3f}" for name, ms in best.items())
                + f"; httpx / httpx on aiohttp {best['httpx'] / best['httpx on aiohttp']:.2f}x"
            )
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()

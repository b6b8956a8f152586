"""The fake Attio for the sweep benchmark, served in a process of its own.

``python -m tests.fake_attio`` only knows its two default workspaces, so this wraps
the same ``FakeAttio`` with N generated workspaces and a few control routes under
``/_bench/`` (never counted as Attio calls):

- ``POST /_bench/tokens`` ``{"plan": [[workspace_id, "oauth" | "api_key"], ...]}``
  mints one credential per entry and answers ``{"tokens": [...]}`` (token bodies as
  ``/oauth/token`` would answer them; API keys as ``{"access_token": key}``);
- ``POST /_bench/clear`` forgets the call log and the fake's rate counters;
- ``GET /_bench/log`` answers ``{"calls": [[arrived, endpoint, workspace_id, status],
  ...], "fake_peaks": {workspace_id: {"read": n, "write": n}}}``. ``arrived`` is
  ``time.monotonic()`` when the request reached the fake (system-wide on Linux, so
  comparable with the sweep's clock); ``workspace_id`` is that of the bearer token
  (``/v2/self``) or of the refresh token (``/oauth/token``).

Run as ``python -m bench.fake_server --workspaces 100 --latency 0.05``; it prints
``BASE_URL http://127.0.0.1:PORT`` once it listens.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import httpx

from tests.fake_attio import FakeAttio
from tests.fake_attio.server import base_url_of, bind_socket, make_server


def workspace_specs(count: int) -> list[dict[str, str]]:
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://bench.test/workspace/{i}")),
            "name": f"Bench workspace {i:03d}",
            "slug": f"bench-{i:03d}",
        }
        for i in range(count)
    ]


class BenchFake(FakeAttio):
    """FakeAttio that keeps a light log of when each request arrived, and for whom."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[float, str, str, int | None]] = []
        self.add_route("POST", "/_bench/tokens", "bench", self._bench_tokens, "oauth")
        self.add_route("POST", "/_bench/clear", "bench", self._bench_clear, "oauth")
        self.add_route("GET", "/_bench/log", "bench", self._bench_log, "oauth")

    def prepare(self, request: httpx.Request):
        ctx = super().prepare(request)
        ctx.bench_arrived = time.monotonic()
        return ctx

    def finish(self, ctx) -> httpx.Response:
        response = super().finish(ctx)
        if ctx.endpoint != "bench":
            self._log(ctx, response.status_code)
        return response

    def _log(self, ctx, status: int | None) -> None:
        if ctx.endpoint == "refresh":
            token = (ctx.form or {}).get("refresh_token")
        else:
            token = self._bearer_token(ctx.request)
        with self.lock:
            record = self._tokens.get(token) if token else None
            workspace_id = record.workspace_id if record else ""
            self.log.append((ctx.bench_arrived, ctx.endpoint, workspace_id, status))

    # --- control routes (run under the fake's lock) ---------------------------------

    def _bench_tokens(self, ctx) -> httpx.Response:
        tokens = []
        for workspace_id, kind in (ctx.json or {}).get("plan", []):
            if kind == "api_key":
                tokens.append({"access_token": self.add_api_key(workspace_id)})
            else:
                tokens.append(self.issue_tokens(workspace_id))
        return httpx.Response(200, json={"tokens": tokens})

    def _bench_clear(self, ctx) -> httpx.Response:
        self.log = []
        self._calls = []
        self._rates = type(self._rates)()
        return httpx.Response(200, json={"cleared": True})

    def _bench_log(self, ctx) -> httpx.Response:
        peaks = {
            ws.id: {kind: self._rates.peak(ws.id, kind) for kind in ("read", "write")}
            for ws in self.workspaces
        }
        return httpx.Response(200, json={"calls": self.log, "fake_peaks": peaks})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_server")
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-token-lifetime", type=int, default=3600)
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle's algorithm on (~40 ms more per answer), as the fake did once",
    )
    args = parser.parse_args(argv)
    fake = BenchFake(
        workspaces=workspace_specs(args.workspaces),
        latency=args.latency,
        strict_spec=False,
        token_shape="refreshing",
        access_token_lifetime=args.access_token_lifetime,
    )
    sock = bind_socket("127.0.0.1", args.port, nodelay=not args.nagle)
    print(f"BASE_URL {base_url_of(sock)}", flush=True)
    print(f"CLIENT {fake.client_id} {fake.client_secret}", flush=True)
    make_server(fake).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())

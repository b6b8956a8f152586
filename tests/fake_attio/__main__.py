"""Run the fake Attio as a loopback HTTP server, for browser and end-to-end tests.

From the repository root::

    python -m tests.fake_attio --port 8765 [--host 127.0.0.1]
        [--token-shape static|refreshing] [--client-id X --client-secret Y]
        [--latency 0.05] [--enforce-rate-limits]
        [--chaos 0.2 [--chaos-kinds timeout,reset,500,429] [--chaos-seed N]]
        [--quiet] [--nodelay]

It prints the base URL, the URLs to point ATTIO_* settings at, and the client
credentials, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys

from .core import CHAOS_KINDS, FakeAttio
from .server import base_url_of, bind_socket, make_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_attio", description="Serve a fake Attio."
    )
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token-shape", choices=("static", "refreshing"), default="static")
    parser.add_argument("--client-id", default="fake-client-id")
    parser.add_argument("--client-secret", default="fake-client-secret")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="registered redirect URI (repeatable; none means accept any)",
    )
    parser.add_argument("--access-token-lifetime", type=int, default=3600)
    parser.add_argument(
        "--api-key", help="also register this exact workspace API key (first workspace)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to delay every response"
    )
    parser.add_argument(
        "--enforce-rate-limits",
        action="store_true",
        help="answer 429 past 100 reads or 25 writes per second per workspace",
    )
    parser.add_argument(
        "--chaos",
        type=float,
        default=0.0,
        help="random-fault mode: fail this share of /v2 requests (e.g. 0.2)",
    )
    parser.add_argument(
        "--chaos-kinds",
        default=",".join(CHAOS_KINDS),
        help="comma list of fault kinds for --chaos (timeout,reset,500,429)",
    )
    parser.add_argument("--chaos-seed", type=int, help="seed for --chaos, for repeatable runs")
    parser.add_argument(
        "--server-hang-seconds",
        type=float,
        default=30.0,
        help="how long an injected timeout keeps a request hanging",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log (for load tests)")
    parser.add_argument(
        "--nodelay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Nagle's algorithm off (the default; with it on, answers can wait ~40 ms "
        "for a delayed ACK)",
    )
    parser.add_argument(
        "--no-strict-spec",
        action="store_true",
        help="do not check /v2 requests against Attio's OpenAPI document",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fake = FakeAttio(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        token_shape=args.token_shape,
        access_token_lifetime=args.access_token_lifetime,
        strict_spec=not args.no_strict_spec,
        latency=args.latency,
        enforce_rate_limits=args.enforce_rate_limits,
        server_hang_seconds=args.server_hang_seconds,
    )
    if args.api_key:
        fake.add_api_key(token=args.api_key)
    if args.chaos:
        kinds = [k.strip() for k in args.chaos_kinds.split(",") if k.strip()]
        fake.chaos(args.chaos, kinds, fake.endpoints("api"), seed=args.chaos_seed)
    sock = bind_socket(args.host, args.port, nodelay=args.nodelay)
    base_url = base_url_of(sock)
    lines = [
        f"Fake Attio (test double) listening on {base_url}",
        f"  ATTIO_AUTHORIZE_URL={base_url}/authorize",
        f"  ATTIO_TOKEN_URL={base_url}/oauth/token",
        f"  ATTIO_INTROSPECT_URL={base_url}/oauth/introspect",
        f"  ATTIO_REVOKE_URL={base_url}/oauth/revoke",
        f"  ATTIO_API_BASE_URL={base_url}",
        f"  ATTIO_CLIENT_ID={fake.client_id}",
        f"  ATTIO_CLIENT_SECRET={fake.client_secret}",
        f"  token shape: {fake.token_shape}",
    ]
    lines += [f"  workspace: {ws.name} slug={ws.slug} id={ws.id}" for ws in fake.workspaces]
    if args.api_key:
        lines.append(f"  API key registered for {fake.workspaces[0].slug}")
    if args.chaos:
        lines.append(f"  random faults on {args.chaos:.0%} of /v2 requests: {args.chaos_kinds}")
    print("\n".join(lines), flush=True)
    server = make_server(fake, verbose=not args.quiet)
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())

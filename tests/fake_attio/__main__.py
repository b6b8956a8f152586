"""Run the fake Attio as a loopback HTTP server, for browser and end-to-end tests.

From the repository root::

    python -m tests.fake_attio --port 8765 [--host 127.0.0.1]
        [--token-shape static|refreshing] [--client-id X --client-secret Y]
        [--latency 0.05] [--enforce-rate-limits]

It prints the base URL, the URLs to point ATTIO_* settings at, and the client
credentials, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys

from .core import FakeAttio
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
    )
    if args.api_key:
        fake.add_api_key(token=args.api_key)
    sock = bind_socket(args.host, args.port)
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
    print("\n".join(lines), flush=True)
    server = make_server(fake, verbose=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())

"""How big `tools/list` is, per tool profile and access: what every conversation pays for.

    .venv/bin/python bench/tool_list_size.py [--untrimmed] [--largest 10]

Builds the gateway's MCP server and lists its tools with the SDK's own client (in memory,
no database or network), as a read-write and a read-only caller of each tool profile,
through the policy middleware that filters the list. For each it prints the number of
tools, the bytes of the `tools/list` result as the client receives it (compact JSON, as
the SDK writes it on the wire), an approximate token count (bytes / 4) and, when the
`bpe-openai` package is installed (`pip install bpe-openai`: its tables are bundled, so
it works offline; not a dependency of the project), the o200k_base token count. Claude's
tokenizer is not public; bytes / 4 is the estimate the targets are set in.

`--untrimmed` lists the tools as the SDK defines them, without tools.definitions() (its
output schemas, pydantic's titles and the rest): the "before" figures. `--largest N`
also prints the N largest tools of the full profile and what each part of them weighs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROFILES = ["full", "compact"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--untrimmed", action="store_true", help="the SDK's own definitions")
    parser.add_argument("--largest", type=int, default=0, help="list the N largest tools")
    return parser.parse_args(argv)


def set_up_django() -> None:
    # Nothing here reads the database: an in-memory one keeps the bench off any real one.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")
    os.environ["DATABASE_URL"] = "sqlite://:memory:"
    import django

    django.setup()


def caller(profile: str, *, read_only: bool):
    """A Caller as the verifier makes one, from rows never saved (tools/list reads none)."""
    from django.contrib.auth import get_user_model

    from connections.models import Connection
    from mcp_gateway.auth import Caller
    from mcp_gateway.models import ApiKey

    user = get_user_model()(username="bench")
    key = ApiKey(owner=user, name="bench", read_only=read_only, tool_profile=profile)
    return Caller(
        user=user,
        connection=Connection(owner=user),
        read_only=read_only,
        tool_access=None,
        key=key,
    )


async def list_tools(server, who) -> bytes:
    """The tools/list result `who` receives, as JSON bytes."""
    from mcp.client.client import Client
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    # What the SDK's auth middleware sets for a verified key (auth.current_caller reads it);
    # the in-memory server's tasks start from this context.
    token = AccessToken(token="bench", client_id="bench", scopes=[], claims={"caller": who})
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        async with Client(server) as client:
            result = await client.list_tools()
    finally:
        auth_context_var.reset(reset)
    # Only the fields the server sent are set on the parsed result, so this is its JSON.
    return result.model_dump_json(by_alias=True, exclude_unset=True).encode()


def o200k_counter():
    try:
        import bpe_openai
    except ImportError:
        return None
    encoding = bpe_openai.get_encoding("o200k_base")
    return lambda data: len(encoding.encode(data.decode()))


def largest(listing: bytes, count: int) -> None:
    def size(value) -> int:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    rows = []
    for tool in json.loads(listing)["tools"]:
        properties = tool.get("inputSchema", {}).get("properties", {})
        described = sum(size(p.get("description", "")) for p in properties.values())
        rows.append(
            (
                size(tool),
                tool["name"],
                size(tool.get("description", "")),
                size(tool.get("inputSchema", {})),
                described,
                size(tool.get("outputSchema", {})) if "outputSchema" in tool else 0,
            )
        )
    print("\nLargest tools (bytes): total, description, inputSchema (of it argument descriptions)")
    for total, name, description, schema, described, output in sorted(rows, reverse=True)[:count]:
        extra = f", outputSchema {output}" if output else ""
        print(f"  {name:24} {total:6} {description:6} {schema:6} ({described}){extra}")


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_up_django()
    from mcp_gateway import tools
    from mcp_gateway.server import build_server

    if args.untrimmed:
        tools.definitions = lambda listed: listed
    count_o200k = o200k_counter()
    header = f"{'profile':8} {'access':10} {'tools':>5} {'bytes':>7} {'~tokens':>8}"
    print(header + (f" {'o200k':>7}" if count_o200k else ""))
    full_listing = b""
    for profile in PROFILES:
        for read_only in (False, True):
            # A server per listing: the SDK runs a server's lifespan once.
            listing = await list_tools(build_server(), caller(profile, read_only=read_only))
            if profile == "full" and not read_only:
                full_listing = listing
            line = (
                f"{profile:8} {'read-only' if read_only else 'read-write':10} "
                f"{len(json.loads(listing)['tools']):5} {len(listing):7,} {len(listing) // 4:8,}"
            )
            print(line + (f" {count_o200k(listing):7,}" if count_o200k else ""))
    if args.largest:
        largest(full_listing, args.largest)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Where a server's CPU goes, by layer, from py-spy's raw (collapsed) stacks.

    .venv/bin/python bench/profile_parts.py PROFILE.txt [CALLS]

`bench/gateway.py --profile DIR` writes one such file per server (py-spy `--gil`: samples
taken while a thread holds the GIL, so waiting is not counted). Each sample is put in the
layer of its innermost frame that belongs to one (the first match, from the leaf up, in
LAYERS' order): time in asyncio under httpx is httpx's, and time in our code under the SDK
is ours. Given CALLS (the calls served while it recorded, which gateway.py prints), it also
gives each layer's milliseconds per call at py-spy's rate (250 samples a second).
"""

import collections
import re
import sys

LAYERS = [
    (
        "Attio GET (httpx, httpx_aiohttp, aiohttp, yarl, multidict)",
        r"\((httpx|httpcore|httpx_aiohttp|aiohttp|yarl|multidict)/",
    ),
    ("key check (psycopg, our SQL)", r"\((psycopg|psycopg_pool)/|postgres_checks\.py"),
    ("token unsealing (cryptography)", r"\(cryptography/|connections/crypto\.py"),
    ("Django (models, ORM, asgiref)", r"\((django|asgiref)/"),
    ("pydantic", r"\(pydantic"),
    ("json", r"\(json/"),
    ("logging", r"\(logging/"),
    ("the portal's own code", r"\((mcp_gateway|connections|attio_portal|bench)/"),
    ("MCP SDK", r"\((mcp|mcp_types)/"),
    ("anyio", r"\(anyio/"),
    ("starlette", r"\(starlette/"),
    ("HTTP server (uvicorn, h11)", r"\((uvicorn|h11)/"),
    ("event loop (asyncio, selectors)", r"\((asyncio|selectors)"),
]
RATE = 250


def layer(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return "other"


def main(argv: list[str]) -> None:
    path, calls = argv[0], int(argv[1]) if len(argv) > 1 else None
    samples: collections.Counter[str] = collections.Counter()
    with open(path) as profile:
        for line in profile:
            stack, _, count = line.rstrip().rpartition(" ")
            samples[layer(stack.split(";"))] += int(count)
    total = sum(samples.values())
    print(f"{path}: {total} samples" + (f", {calls} calls" if calls else ""))
    for name, count in samples.most_common():
        per_call = f"  {count / RATE / calls * 1000:5.2f} ms/call" if calls else ""
        print(f"  {count / total * 100:5.1f} %{per_call}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])

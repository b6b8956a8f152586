"""The floor for the gateway benchmark: the SDK alone, with the same `get_record` tool.

    FLOOR_ATTIO_URL=http://127.0.0.1:PORT FLOOR_ATTIO_TOKEN=... \
        uvicorn bench.gateway_floor:app --workers 1 --lifespan on

A bare `MCPServer` in stateless JSON mode, as the gateway runs it, with no auth, no Django,
no database: one tool that makes the same Attio GET with a fixed token through one shared
`httpx.AsyncClient` over aiohttp (the same libraries, timeout and pool limits as
`connections.attio`'s `async_client()` with its `gateway_transport()`) and
returns the same shape as the gateway's `get_record` (`Record`, values compacted the same
way), so the two answers are the same size. Whatever the gateway costs above this is its
own: the key check, the connection lookup and decryption, policy and audit.
"""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

ATTIO_URL = os.environ.get("FLOOR_ATTIO_URL", "http://127.0.0.1:8765").rstrip("/")
TOKEN = os.environ.get("FLOOR_ATTIO_TOKEN", "")
# The gateway's pool (connections/attio.py async_client()); FLOOR_MAX_CONNECTIONS and
# FLOOR_MAX_KEEPALIVE change it, to measure the pool limits on their own (aiohttp uses the
# first and the keep-alive expiry only).
LIMITS = httpx.Limits(
    max_connections=int(os.environ.get("FLOOR_MAX_CONNECTIONS", "100")),
    max_keepalive_connections=int(os.environ.get("FLOOR_MAX_KEEPALIVE", "50")),
)
HISTORY_KEYS = {"active_from", "active_until", "created_by_actor"}

_client: httpx.AsyncClient | None = None


@contextlib.asynccontextmanager
async def closing_the_client(_server):
    # As the gateway's lifespan does: aiohttp reports a session left open at exit.
    global _client
    try:
        yield {}
    finally:
        if _client is not None:
            await _client.aclose()
            _client = None


server = MCPServer(name="floor", version="1.0", log_level="WARNING", lifespan=closing_the_client)


def client() -> httpx.AsyncClient:
    # Made on first use, inside the server's event loop.
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            headers={"User-Agent": "attio-portal-floor"},
            transport=AiohttpTransport(limits=LIMITS),
        )
    return _client


class Record(BaseModel):
    record_id: str
    object_id: str
    name: str | None = None
    created_at: str | None
    web_url: str | None = None
    values: dict[str, list[dict[str, Any]]]


def compact(values: dict) -> dict[str, list[dict]]:
    out = {}
    for slug, items in values.items():
        if items:
            out[slug] = []
            for v in items:
                v = {k: x for k, x in v.items() if k not in HISTORY_KEYS}
                for name in ("option", "status"):
                    if isinstance(v.get(name), dict):
                        v[name] = v[name].get("title")
                out[slug].append(v)
    return out


@server.tool(title="Get a record")
async def get_record(
    object: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=128)],
    record_id: Annotated[str, Field(pattern=r"^[0-9a-fA-F-]{36}$")],
) -> Record:
    """Get one record by object and record id."""
    url = f"{ATTIO_URL}/v2/objects/{quote(object, safe='')}/records/{quote(record_id, safe='')}"
    response = await client().get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    if response.status_code >= 400:
        raise ToolError(f"Attio answered HTTP {response.status_code}")
    item = response.json()["data"]
    values = item.get("values") or {}
    name = next((v.get("full_name") for v in values.get("name") or [] if v.get("full_name")), None)
    return Record(
        record_id=item["id"]["record_id"],
        object_id=item["id"]["object_id"],
        name=name,
        created_at=item.get("created_at"),
        web_url=item.get("web_url"),
        values=compact(values),
    )


app = server.streamable_http_app(
    streamable_http_path="/mcp", stateless_http=True, json_response=True
)

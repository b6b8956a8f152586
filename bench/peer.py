"""The peer in the gateway benchmark: the TypeScript attio-mcp-server this project grew
from, as npm publishes it (`attio-mcp`, built), served over streamable HTTP the way its
Smithery build serves it (bench/peer/serve.mjs), on loopback, against the same fake Attio.

`bench/gateway.py --peer` runs it in the rotation beside the floor and the gateway. It is
installed on first use into `.cache/peer/` with the machine's Node.js (20 or later) and
npm. The seed's repository at the commit the notes measured (c1e9cce) is the same server;
npm's 1.6.1 is what a user installs today.

Its tool is `get_record_details` (`resource_type`, `record_id`): one GET of the record
upstream, as the gateway's `get_record`. It answers protocol versions up to 2025-11-25 and
keeps a session per client: the benchmark opens one (initialize, then initialized) and
sends every call in it, from all of wrk's connections.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests import npm

PACKAGES = ["attio-mcp@1.6.1", "@smithery/sdk@3.0.1"]
FOLDER = npm.CACHE / "peer"
LAUNCHER = Path(__file__).resolve().parent / "peer" / "serve.mjs"
PROTOCOL = "2025-11-25"
# The seed checks an API key's shape (64 characters) before it calls Attio.
TOKEN_LENGTH = 64


def installed() -> Path:
    """The node_modules folder holding the seed's server and Smithery's HTTP wrapper."""
    return npm.installed(FOLDER, PACKAGES) / "node_modules"


def command() -> list[str]:
    return ["node", str(LAUNCHER)]


def environment(port: int, attio_url: str, token: str) -> dict[str, str]:
    return {
        "PEER_MODULES": str(installed()),
        "PORT": str(port),
        "ATTIO_API_KEY": token,
        "ATTIO_BASE_URL": f"{attio_url}/v2",
        # As it would be deployed: its logger writes DEBUG lines (several per call)
        # unless NODE_ENV is production, INFO then.
        "NODE_ENV": "production",
    }


def request_body(record_id: str) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "get_record_details",
                "arguments": {"resource_type": "people", "record_id": record_id},
            },
        },
        separators=(",", ":"),
    )


def request_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
    }


def open_session(url: str) -> str:
    """A session of the peer's (initialize, then notifications/initialized): its id."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    request = urllib.request.Request(
        url, data=json.dumps(initialize).encode(), method="POST", headers=request_headers()
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        session = response.headers["Mcp-Session-Id"]
        response.read()
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    request = urllib.request.Request(
        url,
        data=json.dumps(initialized).encode(),
        method="POST",
        headers={**request_headers(), "Mcp-Session-Id": session},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return session


def answer_of(body: bytes) -> dict:
    """The JSON-RPC answer in a body that is JSON or an event stream (the peer's)."""
    text = body.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    data = [line[len("data:") :] for line in text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])

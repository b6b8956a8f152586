"""Real processes and MCP clients for the fault tests and bench/load.py.

Everything here starts processes in sessions of their own and stops them by their
process group id, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes ---------------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signal the process group and wait; SIGKILL it if it lingers."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the whole process group (a Celery worker and its pool children) at once."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    # Pool children are in the same group; wait until none is left.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {process.pid} survived SIGKILL")


def start_uvicorn(
    env: dict[str, str], port: int, log, workers: int = 2, launcher: list[str] | None = None
) -> subprocess.Popen:
    """The portal's ASGI app under uvicorn, started as in production (`python -m
    attio_portal.serve`) unless `launcher` gives another command."""
    return spawn(
        [
            *(launcher or [str(BIN / "python"), "-m", "attio_portal.serve"]),
            "attio_portal.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "on",
            "--no-access-log",
        ],
        env,
        log,
    )


def wait_until_serving(
    base: str, process: subprocess.Popen, timeout: float = 60, path: str = "/accounts/login/"
) -> None:
    """Until the portal answers 200 at `path` (healthz would also need the broker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base} did not start within {timeout} s")


def start_celery(
    kind: str,
    env: dict[str, str],
    log,
    *,
    queue: str,
    schedule: Path | None = None,
    concurrency: int = 2,
) -> subprocess.Popen:
    """A Celery worker (consuming `queue`) or beat (`kind="beat"`), in its own session."""
    celery = [str(BIN / "celery"), "-A", "attio_portal"]
    if kind == "worker":
        args = [
            *celery,
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            queue,
        ]
    else:
        args = [*celery, "beat", "--loglevel=INFO", "--schedule", str(schedule)]
    return spawn(args, env, log)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; return its value (the last one on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class RedisServer:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 (the process keeps it)
        self.process = spawn(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            dict(os.environ),
            log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        stop(self.process, signal.SIGKILL)
        self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def log_file(path: Path) -> Iterator[Any]:
    log = open(path, "w+")  # noqa: SIM115
    try:
        yield log
    finally:
        log.close()


def read_log(path: Path, tail: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-tail:]
    except OSError:
        return ""


# --- The gateway's answers to Attio's failures -----------------------------------------

# Every tool error the gateway may give for these faults: Attio's failure in words, no
# HTTP status (nothing came back) or the status, a reference and a next step.
ATTIO_ERROR = re.compile(
    r"Attio: (?P<message>Attio timed out|Attio could not be reached|"
    r"Attio is unavailable \(HTTP 500\)|Attio's rate limit was reached) "
    r"\((?:code: [\w.-]+, )?(?P<status>no answer|HTTP \d{3}), reference [0-9a-f]{12}\)\. "
    r"(?P<step>.+)"
)
READ_STEP = "Attio is unavailable or slow right now; try again in a minute."
WRITE_STEP = "Attio did not confirm the change: check whether it was applied before trying again."
RATE_STEP = "Attio's rate limit was reached; wait a little and try again."
EXPECTED_STATUS = {
    "Attio timed out": "no answer",
    "Attio could not be reached": "no answer",
    "Attio is unavailable (HTTP 500)": "HTTP 500",
    "Attio's rate limit was reached": "HTTP 429",
}
READS = ("whoami", "get_record", "query_records")


def error_problem(tool: str, text: str) -> str | None:
    """Why a tool error text is not one of the gateway's clear messages (None if it is).

    The SDK puts "Error executing tool NAME: " before a ToolError's message; a crash
    (any other exception) is just "Error executing tool NAME".
    """
    prefix = f"Error executing tool {tool}: "
    if "Traceback" in text or not text.startswith(prefix):
        return "internal error"
    found = ATTIO_ERROR.fullmatch(text.removeprefix(prefix))
    if found is None:
        return "unknown message"
    message, status, step = found["message"], found["status"], found["step"]
    if EXPECTED_STATUS[message] != status:
        return f"{message!r} with {status}"
    expected = RATE_STEP if status == "HTTP 429" else READ_STEP if tool in READS else WRITE_STEP
    if step != expected:
        return f"next step {step!r} for {tool}"
    return None


# --- MCP clients -------------------------------------------------------------------------


@dataclass
class CallRecord:
    client: int
    tool: str
    arguments: dict
    started: float
    seconds: float
    outcome: str  # "ok", "tool_error" or "exception"
    text: str = ""
    structured: dict | None = None


@dataclass
class LoadResult:
    calls: list[CallRecord] = field(default_factory=list)
    http_statuses: Counter = field(default_factory=Counter)
    # (status, method, body) of every HTTP answer of 500 or more.
    server_errors: list[tuple[int, str, str]] = field(default_factory=list)
    sessions: int = 0
    elapsed: float = 0.0

    def outcomes(self) -> Counter:
        return Counter(c.outcome for c in self.calls)

    def latencies(self, tool: str | None = None) -> list[float]:
        return sorted(c.seconds for c in self.calls if tool is None or c.tool == tool)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(p / 100 * len(values) + 0.5)))
    return values[rank - 1]


NextCall = Callable[[int, int], tuple[str, dict]]


async def run_clients(
    url: str,
    keys: list[str],
    clients: int,
    duration: float,
    next_call: NextCall,
    *,
    timeout: float = 30,
) -> LoadResult:
    """`clients` MCP SDK clients over real HTTP, each calling tools back to back.

    Client i uses key `keys[i % len(keys)]` and calls `next_call(i, n)` for its n-th call.
    An exception (a JSON-RPC error, an HTTP error, a broken session) is recorded and the
    client opens a new session.
    """
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    result = LoadResult()
    stop_at = time.monotonic() + duration

    async def on_response(response) -> None:
        result.http_statuses[response.status_code] += 1
        if response.status_code >= 500:
            await response.aread()
            result.server_errors.append(
                (response.status_code, response.request.method, response.text[:500])
            )

    async def one(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            http = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                timeout=timeout,
                event_hooks={"response": [on_response]},
            )
            try:
                async with http, Client(streamable_http_client(url, http_client=http)) as c:
                    result.sessions += 1
                    while time.monotonic() < stop_at:
                        name, arguments = next_call(i, n)
                        n += 1
                        record = CallRecord(i, name, arguments, time.monotonic(), 0.0, "ok")
                        result.calls.append(record)
                        try:
                            answer = await c.call_tool(name, arguments)
                        except Exception as e:
                            record.seconds = time.monotonic() - record.started
                            record.outcome = "exception"
                            record.text = f"{type(e).__name__}: {e}"[:500]
                            break
                        record.seconds = time.monotonic() - record.started
                        record.text = " ".join(
                            b.text for b in answer.content if getattr(b, "type", "") == "text"
                        )
                        record.structured = answer.structured_content
                        if answer.is_error:
                            record.outcome = "tool_error"
            except Exception as e:  # the session could not open or close
                result.calls.append(
                    CallRecord(i, "(session)", {}, time.monotonic(), 0.0, "exception", repr(e))
                )
                await asyncio.sleep(0.2)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    result.elapsed = time.monotonic() - started
    return result


async def mcp_session(url: str, key: str, body, *, timeout: float = 20):
    """Run `body(client)` in one MCP SDK session over real HTTP."""
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        return await body(client)


def sign_in(base: str, username: str, password: str) -> httpx.Client:
    """A browser-like session signed in to the portal."""
    import re

    client = httpx.Client(base_url=base, timeout=20)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    answer = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
    )
    if answer.status_code != 302:
        raise AssertionError(f"sign-in failed: {answer.status_code}")
    return client

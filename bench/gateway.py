"""Benchmark the MCP gateway against the SDK's own floor, side by side in one run.

Over 600 lines on purpose: one benchmark is one script (set-up, the runs, the report) so
that its figures in bench/README.md can be reproduced from the file alone.

    .venv/bin/python bench/gateway.py [--duration 10] [--warmup 3] [--rounds 3]
        [--concurrency 1,16] [--latency 0] [--extra-keys 100000] [--verify-calls 4000]
        [--two-workers] [--peer] [--json results.json] [--profile DIR]

What it does (see bench/README.md, "Gateway"):

1. serves the fake Attio in a subprocess on loopback (bench/gateway_fake.py: the
   tests.fake_attio fake, no strict spec, Nagle off, `--latency` seconds per answer);
2. creates a PostgreSQL database of its own (portal_bench_gw, dropped at the end), migrates,
   and seeds one user, one active Attio connection whose token the fake accepts, one API key,
   and `--extra-keys` more keys (bulk-created) so the key lookup runs against a full table;
3. times key verification directly (the gateway's key checks and the SDK verifier) over many
   calls, with those keys present;
4. runs two uvicorn servers with the same flags (one worker, `--lifespan on`):
   (a) the real `attio_portal.asgi:application`, (b) the floor, `bench/gateway_floor.py`;
   with `--two-workers` also the gateway with two workers (the portal's launcher), and with
   `--peer` the seed's TypeScript server (bench/peer.py) on the same fake;
5. drives both with wrk (a Lua script POSTs the `tools/call` of `get_record` that the SDK's
   own client sends) at each concurrency: a warm-up each, then measured runs alternating
   floor/gateway/floor/gateway...; every answer is checked to hold the record;
6. prints p50, p99 and calls/s (medians over the rounds), the gateway/floor ratios, CPU per
   call of each server and of the fake, and each worker's RSS (from /proc) after the load.

Needs wrk (`apt-get install -y wrk`) and the local PostgreSQL (`--admin-url`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import peer  # noqa: E402
from bench.support import (  # noqa: E402 (after the path fix above)
    cpu_seconds,
    drop_database,
    recreate_database,
    set_up_portal,
)
from tests.faults.harness import free_port, percentile, stop  # noqa: E402

ADMIN_URL = "postgres://portal:portal@127.0.0.1:5432/portal"
BIN = Path(sys.executable).parent
SERVERS = ("floor", "gateway")
# The JSON-RPC POST the SDK's Client (mcp 2.3.0, protocol 2026-07-28) sends for one
# call_tool: a self-contained request, no initialize, no session.
PROTOCOL = "2026-07-28"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    p.add_argument("--rounds", type=int, default=3, help="floor/gateway pairs per concurrency")
    p.add_argument("--concurrency", default="1,16", help="comma list of open connections")
    p.add_argument("--latency", type=float, default=0.0, help="fake Attio latency, seconds")
    p.add_argument("--extra-keys", type=int, default=100_000, help="keys besides the bench key")
    p.add_argument("--verify-calls", type=int, default=4000, help="timed key verifications")
    p.add_argument("--database", default="portal_bench_gw")
    p.add_argument("--admin-url", default=ADMIN_URL, help="a database the role can connect to")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument(
        "--profile",
        help="after the measured runs, record the gateway with py-spy during one run at the "
        "highest concurrency and write collapsed stacks to this directory",
    )
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run attio_portal.asgi:application from another copy of the project (e.g. "
        "the code before a change) as one more server in the rotation, same database",
    )
    p.add_argument(
        "--floor-limits",
        action="append",
        default=[],
        metavar="MAX:KEEPALIVE",
        help="also run the floor with these httpx pool limits (default 100:50, the gateway's) "
        "as one more server in the rotation, e.g. 8:8",
    )
    p.add_argument(
        "--gateway-flags",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="also run the gateway with these uvicorn flags as one more server, e.g. "
        "'uvloop=--loop uvloop --http h11'",
    )
    p.add_argument(
        "--two-workers",
        action="store_true",
        help="also run the gateway with two workers (python -m attio_portal.serve --workers "
        "2, each on its own SO_REUSEPORT socket) as `gateway-2w`",
    )
    p.add_argument(
        "--peer",
        action="store_true",
        help="also run the seed's TypeScript server (bench/peer.py; npm and Node.js 20+) "
        "against the same fake Attio, as `peer`",
    )
    p.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    return p.parse_args(argv)


# --- processes -----------------------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak RSS) of a process and its children, in KiB, summed over
    them (for a server with workers this overstates: shared pages count in each, and the
    peaks need not coincide)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in out:
                    out[name] += int(value.split()[0])
    return out


def process_tree(pid: int) -> list[int]:
    """The process and its descendants, alive now."""
    found, i = [pid], 0
    while i < len(found):
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{found[i]}/task/{found[i]}/children").read_text()
            found.extend(int(c) for c in children.split())
        i += 1
    return found


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process on the machine (the servers' key checks and audit
    writes, while one server is under load at a time)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                total += cpu_seconds(int(stat.parent.name))
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a server: its process and its workers."""
    return sum(cpu_seconds(member) for member in process_tree(pid))


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine() -> dict[str, str]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "free_h": subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.rstrip(),
        "python": sys.version.split()[0],
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }


class Fake:
    def __init__(self, token: str, latency: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway_fake", "--token", token]
            + ["--latency", str(latency)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.url = self.proc.stdout.readline().split()[1]
        self.record_id = self.proc.stdout.readline().split()[1]
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/v2/self", timeout=2)
            except urllib.error.HTTPError:
                break  # 401 without a token: it answers
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the fake Attio did not start") from None
                time.sleep(0.1)
            else:
                break


@dataclass
class Server:
    name: str
    app: str
    port: int
    headers: dict[str, str]
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)  # on top of the common environment
    workers: int = 1
    unique_ids: bool = False  # a request id per call (UNIQUE_IDS)
    flags: list[str] = field(default_factory=list)  # more of uvicorn's options
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def request_body(self, record_id: str) -> str:
        return request_body(record_id)

    def request_headers(self) -> dict[str, str]:
        return {**base_headers(), **self.headers}

    def ready(self) -> None:
        """Anything to do once the server listens, before its first call."""

    def command(self) -> list[str]:
        # One worker as before (plain uvicorn); more through the portal's launcher, whose
        # workers each take their share of the connections.
        if self.workers == 1:
            start = [str(BIN / "uvicorn")]
        else:
            start = [sys.executable, "-m", "attio_portal.serve"]
        return [*start, self.app, "--host", "127.0.0.1", "--port", str(self.port)] + [
            "--workers", str(self.workers), "--lifespan", "on", "--no-access-log",
            "--log-level", "warning", *self.flags,
        ]  # fmt: skip

    def start(self, env: dict[str, str], logdir: Path) -> None:
        self.log = logdir / f"{self.name}.log"
        pythonpath = env.get("PYTHONPATH", "")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env={
                    **env,
                    **self.env,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(self.cwd), pythonpath])),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@dataclass
class Peer(Server):
    """The seed's server (bench/peer.py), in one session opened once it is up."""

    attio_url: str = ""
    token: str = ""
    unique_ids: bool = True

    def command(self) -> list[str]:
        return peer.command()

    def start(self, env: dict[str, str], logdir: Path) -> None:
        self.env = peer.environment(self.port, self.attio_url, self.token)
        super().start({k: v for k, v in env.items() if k != "PYTHONPATH"}, logdir)

    def request_body(self, record_id: str) -> str:
        return peer.request_body(record_id)

    def request_headers(self) -> dict[str, str]:
        return {**peer.request_headers(), **self.headers}

    def ready(self) -> None:
        self.headers = {"Mcp-Session-Id": peer.open_session(self.url)}


# --- the database and Django ------------------------------------------------------------------


def configure(args, fake: Fake, gateway_port: int) -> dict[str, str]:
    """The gateway's environment (also this process's); then django.setup() and migrate."""
    return set_up_portal(
        args,
        PORTAL_BASE_URL=f"http://127.0.0.1:{gateway_port}",
        LOG_LEVEL="WARNING",
        ATTIO_CLIENT_ID="fake-client-id",
        ATTIO_CLIENT_SECRET="fake-client-secret",
        ATTIO_TOKEN_URL=f"{fake.url}/oauth/token",
        ATTIO_API_BASE_URL=fake.url,
        # The per-key limit still runs on every call; set high so it never trips here.
        MCP_RATE_LIMIT_PER_MINUTE="100000000",
    )


@dataclass
class Seeded:
    key: str
    sample_keys: list[str]
    total_keys: int
    seconds: float
    plan: str = ""
    oauth_tokens: list[str] | None = None


def seed(args, fake: Fake, token: str) -> Seeded:
    from django.contrib.auth import get_user_model
    from django.db import connection as db

    from connections.models import Connection
    from mcp_gateway.models import ApiKey, key_digest, new_key

    started = time.monotonic()
    user = get_user_model().objects.create_user("bench", "bench@bench.test", "!")
    connection = Connection(
        owner=user,
        method=Connection.Method.API_KEY,
        status=Connection.Status.ACTIVE,
        workspace_id="74b999b1-888a-5728-91c0-79e4867a2758",  # the fake's "acme"
        workspace_name="Acme",
        workspace_slug="acme",
        scopes="record_permission:read-write",
    )
    connection.save()  # the sealed token's AAD names the row, so it needs its pk first
    connection.set_credentials(access_token=token, refresh_token=None, expires_at=None)
    connection.save()
    _, plaintext = ApiKey.objects.issue(user, connection=connection, name="bench")

    sample: list[str] = []
    batch: list[ApiKey] = []
    for i in range(args.extra_keys):
        public_id, extra = new_key()
        if i % max(1, args.extra_keys // 2000) == 0:
            sample.append(extra)
        batch.append(
            ApiKey(
                owner=user,
                connection=connection,
                name=f"extra {i}",
                public_id=public_id,
                digest=key_digest(extra),
                last_four=extra[-4:],
            )
        )
        if len(batch) == 5000:
            ApiKey.objects.bulk_create(batch)
            batch = []
    ApiKey.objects.bulk_create(batch)
    with db.cursor() as cursor:
        cursor.execute("ANALYZE")
        # The plan of the query the key check runs on PostgreSQL.
        from mcp_gateway.postgres_checks import ApiKeyQuery

        cursor.execute("EXPLAIN " + ApiKeyQuery(db).sql, [plaintext.split("_")[1]])
        plan = "; ".join(row[0].strip() for row in cursor.fetchall())
    from bench.support import seed_tokens

    oauth_tokens = seed_tokens(user, connection, 2000)
    return Seeded(
        oauth_tokens=oauth_tokens,
        key=plaintext,
        sample_keys=sample,
        total_keys=ApiKey.objects.count(),
        seconds=time.monotonic() - started,
        plan=plan,
    )


# --- key verification, timed directly -------------------------------------------------------


def time_key_verification(seeded: Seeded, calls: int) -> dict:
    """The gateway's key checks and the SDK verifier over `calls` calls each, from this
    process: on the worker's own pool in the event loop (what production runs on
    PostgreSQL) and through Django's connection in its thread (the way on other databases).

    Half the calls present the bench key, half one of ~2000 other keys in turn, so the
    figure is not just one hot index page.
    """
    from mcp_gateway import auth

    keys = [
        k
        for pair in zip([seeded.key] * len(seeded.sample_keys), seeded.sample_keys, strict=True)
        for k in pair
    ]
    keys = (keys * (calls // len(keys) + 1))[:calls]

    async def run(key_checks, verify, presented: list[str]) -> list[float]:
        async with key_checks.running():
            # Warm the connections and the caches, and use every key once: a check writes
            # last_used_at on a key's first use in a minute, and that is not the steady state.
            for k in dict.fromkeys(presented):
                assert await verify(k) is not None
            timings = []
            for k in presented:
                started = time.perf_counter()
                result = await verify(k)
                timings.append((time.perf_counter() - started) * 1000)
                assert result is not None
            return timings

    tokens = (seeded.oauth_tokens * (calls // len(seeded.oauth_tokens) + 1))[:calls]
    out = {}
    for label, make in [
        ("own pool", auth.credential_checks),
        ("ORM thread", auth.CredentialChecks),
    ]:
        for name in ("check", "verify_token", "check_oauth_token", "verify_token, OAuth"):
            key_checks = make()
            verifier = auth.PortalVerifier(key_checks)
            verify = {
                "check": key_checks.check,
                "verify_token": verifier.verify_token,
                "check_oauth_token": key_checks.check_oauth_token,
                "verify_token, OAuth": verifier.verify_token,
            }[name]
            presented = tokens if "oauth" in name.lower() else keys
            ms = sorted(asyncio.run(run(key_checks, verify, presented)))
            out[f"{name} ({label})"] = {
                "calls": len(ms),
                "p50_ms": round(percentile(ms, 50), 3),
                "p99_ms": round(percentile(ms, 99), 3),
                "max_ms": round(max(ms), 3),
            }
    return out


# --- load ---------------------------------------------------------------------------------------

LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
%(headers)s
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args) bad = 0 end
%(request)s
function response(status, headers, body)
  if status ~= 200 or not string.find(body, [[%(expect)s]], 1, true)
     or string.find(body, '"isError":true', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "bad": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, b,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


# For a server that keeps one session for all of wrk's connections (the peer): a request
# id of its own for every call, as a client must send within a session (with one id for
# all, concurrent calls answer one another's connection and the rest wait for ever).
UNIQUE_IDS = """
local sent = 0
function request()
  sent = sent + 1
  local id = '"id":"' .. tid .. '-' .. sent .. '",'
  return wrk.format(nil, nil, nil, (string.gsub(wrk.body, '"id":2,', id, 1)))
end
"""


def request_body(record_id: str) -> str:
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "get_record",
                "arguments": {"object": "people", "record_id": record_id},
                "_meta": meta,
            },
        },
        separators=(",", ":"),
    )


def base_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "get_record",
    }


def write_lua(server: Server, record_id: str, directory: Path) -> Path:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in server.request_headers().items())
    script = directory / f"{server.name}.lua"
    script.write_text(
        LUA
        % {
            "body": server.request_body(record_id),
            "headers": headers,
            "expect": record_id,
            "request": UNIQUE_IDS if server.unique_ids else "",
        }
    )
    return script


def call_once(server: Server, record_id: str) -> dict:
    request = urllib.request.Request(
        server.url,
        data=server.request_body(record_id).encode(),
        method="POST",
        headers=server.request_headers(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return peer.answer_of(response.read())


def wait_ready(server: Server, record_id: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            server.ready()
            body = call_once(server, record_id)
            break
        except OSError:
            if time.monotonic() > deadline or server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} did not start; see {server.log}") from None
            time.sleep(0.2)
    result = body.get("result") or {}
    # The gateway's record in structuredContent; the peer's, as JSON in its text.
    answered = (result.get("structuredContent") or {}).get("record_id") == record_id or (
        isinstance(server, Peer) and record_id in json.dumps(result.get("content"))
    )
    if result.get("isError") or not answered:
        raise RuntimeError(f"{server.name} answered {json.dumps(body)[:500]}")


@dataclass
class Run:
    server: str
    concurrency: int
    round: int
    requests: int
    seconds: float
    calls_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bad: int
    socket_errors: int
    server_cpu_ms_per_call: float
    fake_cpu_ms_per_call: float
    postgres_cpu_ms_per_call: float
    load_average: float


def wrk(server: Server, script: Path, concurrency: int, seconds: float) -> dict:
    threads = 1 if concurrency < 4 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
        ]
        + ["-s", str(script), server.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def measure(
    server: Server, script: Path, fake: Fake, concurrency: int, seconds: float, round_: int
) -> Run:
    load = load_average()
    cpu0, fake0 = tree_cpu_seconds(server.proc.pid), cpu_seconds(fake.proc.pid)
    db0 = postgres_cpu_seconds()
    r = wrk(server, script, concurrency, seconds)
    cpu1, fake1 = tree_cpu_seconds(server.proc.pid), cpu_seconds(fake.proc.pid)
    db1 = postgres_cpu_seconds()
    n = max(1, r["requests"])
    secs = r["duration_us"] / 1e6
    return Run(
        server=server.name,
        concurrency=concurrency,
        round=round_,
        requests=r["requests"],
        seconds=round(secs, 2),
        calls_per_second=round(r["requests"] / secs, 1),
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        bad=r["bad"],
        socket_errors=r["socket_errors"],
        server_cpu_ms_per_call=round((cpu1 - cpu0) * 1000 / n, 3),
        fake_cpu_ms_per_call=round((fake1 - fake0) * 1000 / n, 3),
        postgres_cpu_ms_per_call=round((db1 - db0) * 1000 / n, 3),
        load_average=load,
    )


def summarise(runs: list[Run], concurrencies: list[int], names: list[str]) -> list[dict]:
    """Medians over the rounds; each gateway's ratios to the floor of the same run."""
    rows = []
    for c in concurrencies:
        row: dict = {"concurrency": c, "ratio": {}, "target_met": {}}
        for name in names:
            mine = [r for r in runs if r.server == name and r.concurrency == c]
            row[name] = {
                "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
                "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
                "calls_per_second": round(statistics.median(r.calls_per_second for r in mine), 1),
                "cpu_ms_per_call": round(
                    statistics.median(r.server_cpu_ms_per_call for r in mine), 2
                ),
                "fake_cpu_ms_per_call": round(
                    statistics.median(r.fake_cpu_ms_per_call for r in mine), 2
                ),
                "postgres_cpu_ms_per_call": round(
                    statistics.median(r.postgres_cpu_ms_per_call for r in mine), 2
                ),
            }
        f = row["floor"]
        for name in names[1:]:
            g = row[name]
            ratio = {
                "p50": round(g["p50_ms"] / f["p50_ms"], 2),
                "p99": round(g["p99_ms"] / f["p99_ms"], 2),
                "calls_per_second": round(g["calls_per_second"] / f["calls_per_second"], 2),
            }
            row["ratio"][name] = ratio
            row["target_met"][name] = ratio["p50"] <= 1.2 and ratio["calls_per_second"] >= 0.8
        if "peer" in names:
            p = row["peer"]
            row["vs_peer"] = {
                name: {
                    "p50": round(row[name]["p50_ms"] / p["p50_ms"], 2),
                    "calls_per_second": round(
                        row[name]["calls_per_second"] / p["calls_per_second"], 2
                    ),
                }
                for name in names
                if name not in ("floor", "peer")
            }
        rows.append(row)
    return rows


def profile(server: Server, script: Path, concurrency: int, seconds: float, out: Path) -> None:
    pyspy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(pyspy).exists():
        print("  (py-spy not installed in the venv: no profile)")
        return
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{server.name}-c{concurrency}.txt"
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--gil"]
        + (["--subprocesses"] if server.workers > 1 else [])
        + ["--rate", "250", "--duration", str(int(seconds)), "--output", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    calls = wrk(server, script, concurrency, seconds)["requests"]
    spy.wait(timeout=60)
    print(
        f"  py-spy collapsed stacks of {server.name} at c={concurrency} ({calls} calls): {target}"
    )


# --- output ---------------------------------------------------------------------------------


def print_table(rows: list[dict], names: list[str]) -> None:
    print()
    print(
        "| concurrency | server | p50 ms | p99 ms | calls/s "
        "| server CPU ms/call | fake CPU ms/call | PostgreSQL CPU ms/call |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for name in names:
            s = row[name]
            print(
                f"| {row['concurrency']} | {name} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                f"{s['calls_per_second']:.0f} | {s['cpu_ms_per_call']:.2f} | "
                f"{s['fake_cpu_ms_per_call']:.2f} | {s['postgres_cpu_ms_per_call']:.2f} |"
            )
        for name, r in row.get("vs_peer", {}).items():
            print(
                f"| {row['concurrency']} | {name}/peer | {r['p50']:.2f}x | | "
                f"{r['calls_per_second']:.2f}x | | | |"
            )
        for name in names[1:]:
            if name == "peer":
                continue
            r = row["ratio"][name]
            verdict = "met" if row["target_met"][name] else "MISSED"
            print(
                f"| {row['concurrency']} | {name}/floor | {r['p50']:.2f}x | {r['p99']:.2f}x | "
                f"{r['calls_per_second']:.2f}x | target (p50 <= 1.2x, calls/s >= 0.8x): "
                f"{verdict} | | |"
            )


def print_runs(runs: list[Run]) -> None:
    print()
    print(
        "| c | round | server | calls | calls/s | p50 ms | p90 ms | p99 ms | CPU ms/call | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(
            f"| {r.concurrency} | {r.round} | {r.server} | {r.requests} | "
            f"{r.calls_per_second:.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.server_cpu_ms_per_call:.2f} | {r.load_average:.1f} |"
        )


# --- main -----------------------------------------------------------------------------------


@dataclass
class Results:
    machine: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    key_verification: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    memory_kib: dict = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    results = Results(machine=machine(), settings=vars(args).copy())
    print(
        f"machine: {results.machine['nproc']} CPUs ({results.machine['cpu']}), load "
        f"{load_average():.1f}"
    )

    # 64 characters: the peer checks a key's length before it calls Attio.
    token = "bench_" + secrets.token_hex(29)
    fake = None
    servers: list[Server] = []
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    created_db = False
    try:
        fake = Fake(token, args.latency)
        print(f"fake Attio at {fake.url} (latency {args.latency} s), record {fake.record_id}")
        gateway_port, floor_port = free_port(), free_port()
        recreate_database(args)
        created_db = True
        env = configure(args, fake, gateway_port)
        seeded = seed(args, fake, token)
        print(
            f"seeded {seeded.total_keys} API keys in {seeded.seconds:.1f} s; key lookup plan: "
            f"{seeded.plan}"
        )
        results.key_verification = time_key_verification(seeded, args.verify_calls)
        results.key_verification["keys_in_table"] = seeded.total_keys
        for name, k in results.key_verification.items():
            if isinstance(k, dict):
                print(
                    f"key verification, {name} with {seeded.total_keys} keys: "
                    f"p50 {k['p50_ms']:.3f} ms, p99 {k['p99_ms']:.3f} ms, "
                    f"max {k['max_ms']:.3f} ms over {k['calls']} calls"
                )
        from django.db import connections

        connections.close_all()

        server_env = {**os.environ, **env}
        floor_env = {
            **server_env,
            "FLOOR_ATTIO_URL": fake.url,
            "FLOOR_ATTIO_TOKEN": token,
        }
        floor = Server("floor", "bench.gateway_floor:app", floor_port, {})
        gateway = Server(
            "gateway",
            "attio_portal.asgi:application",
            gateway_port,
            {"Authorization": f"Bearer {seeded.key}"},
        )
        servers = [floor, gateway]
        for also in args.also:
            name, _, directory = also.partition("=")
            servers.append(
                Server(name, gateway.app, free_port(), gateway.headers, cwd=Path(directory))
            )
        # Extra servers share PORTAL_BASE_URL (the gateway's port): the token's resource
        # is checked against that setting, and Host 127.0.0.1:* is allowed for all.
        for limits in args.floor_limits:
            most, _, keepalive = limits.partition(":")
            servers.append(
                Server(
                    f"floor-{most}:{keepalive}",
                    floor.app,
                    free_port(),
                    {},
                    env={"FLOOR_MAX_CONNECTIONS": most, "FLOOR_MAX_KEEPALIVE": keepalive},
                )
            )
        for variant in args.gateway_flags:
            name, _, flags = variant.partition("=")
            servers.append(
                Server(name, gateway.app, free_port(), gateway.headers, flags=flags.split())
            )
        if args.two_workers:
            servers.append(
                Server("gateway-2w", gateway.app, free_port(), gateway.headers, workers=2)
            )
        if args.peer:
            peer.installed()
            servers.append(Peer("peer", "", free_port(), {}, attio_url=fake.url, token=token))
        for s in servers:
            s.start(floor_env if s.app == floor.app else server_env, workdir)
        for s in servers:
            wait_ready(s, fake.record_id)
            results.memory_kib[f"{s.name}_started"] = memory_kib(s.proc.pid)
        print("servers up: " + ", ".join(f"{s.name} pid {s.proc.pid} :{s.port}" for s in servers))
        scripts = {s.name: write_lua(s, fake.record_id, workdir) for s in servers}

        runs: list[Run] = []
        for c in concurrencies:
            for s in servers:
                wrk(s, scripts[s.name], c, args.warmup)
            for i in range(args.rounds):
                for s in servers:  # A/B/A/B: floor, gateway, floor, gateway...
                    run = measure(s, scripts[s.name], fake, c, args.duration, i + 1)
                    runs.append(run)
                    print(
                        f"  c={c} round {i + 1} {s.name:8s} {run.calls_per_second:7.1f} calls/s"
                        f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms"
                        f"  CPU {run.server_cpu_ms_per_call:.2f} ms/call  load {run.load_average}"
                    )
                    if run.bad or run.socket_errors:
                        raise RuntimeError(
                            f"{s.name}: {run.bad} bad answers, {run.socket_errors} socket errors"
                        )
        for s in servers:
            results.memory_kib[f"{s.name}_after_load"] = memory_kib(s.proc.pid)
        results.runs = [asdict(r) for r in runs]
        names = [s.name for s in servers]
        results.summary = summarise(runs, concurrencies, names)
        print_runs(runs)
        print_table(results.summary, names)
        print()
        for s in servers:
            m0, m1 = (
                results.memory_kib[f"{s.name}_started"],
                results.memory_kib[f"{s.name}_after_load"],
            )
            print(
                f"RSS {s.name} worker: {m0['VmRSS'] / 1024:.1f} MiB after start-up, "
                f"{m1['VmRSS'] / 1024:.1f} MiB after the load (peak {m1['VmHWM'] / 1024:.1f} MiB)"
            )
        if args.profile:
            for s in servers:
                if not isinstance(s, Peer):  # Node.js: py-spy has nothing to say
                    c = max(concurrencies)
                    profile(s, scripts[s.name], c, args.duration, Path(args.profile))
        if args.json:
            Path(args.json).write_text(json.dumps(asdict(results), indent=2))
            print(f"results written to {args.json}")
        return 0
    finally:
        for s in servers:
            stop(s.proc)
        if fake is not None:
            stop(fake.proc)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if created_db and not args.keep_database:
            drop_database(args)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

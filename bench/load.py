"""A bounded load test: N concurrent MCP clients for a fixed time against two uvicorn workers.

    .venv/bin/python bench/load.py [--clients 50] [--duration 60] [--warmup 5] [--workers 2]
        [--tools get_record,whoami] [--chaos 0.2 [--chaos-seed 1]] [--json results.json]

What it does (see bench/README.md, "Load and faults"):

1. serves the fake Attio in a subprocess (`python -m tests.fake_attio --quiet`, with a
   workspace API key it accepts; with `--chaos R` it fails that share of /v2 calls at random
   with timeouts, resets, 500s and 429s);
2. creates a PostgreSQL database of its own (portal_bench_load, dropped at the end),
   migrates, and seeds one user, connection and API key per client (all on the fake's Acme);
3. starts `uvicorn attio_portal.asgi:application --workers 2` (DEBUG off, real secrets, the
   per-key rate limit set out of reach, ATTIO_HTTP_TIMEOUT_SECONDS=1 with --chaos);
4. runs the MCP SDK's own client, one session per client, each calling the tools in turn
   (get_record of a seeded person, whoami) back to back: a warm-up, then the measured run;
5. prints calls, errors, p50/p90/p99/max latency (per call_tool, client side) and calls/s,
   overall and per tool; with --chaos, the errors by kind.

Exit status 1 if any call failed (without --chaos), or (with --chaos) if any answer was an
HTTP 5xx, a JSON-RPC error, a broken session or a tool error other than the gateway's clear
messages for Attio's failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.support import drop_database, recreate_database, set_up_portal  # noqa: E402
from tests.faults.harness import (  # noqa: E402
    BIN,
    LoadResult,
    error_problem,
    free_port,
    percentile,
    read_log,
    run_clients,
    spawn,
    start_uvicorn,
    stop,
    wait_until_serving,
)

ADMIN_URL = "postgres://portal:portal@127.0.0.1:5432/portal"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=50, help="concurrent MCP clients")
    p.add_argument("--duration", type=float, default=60, help="seconds of measured load")
    p.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--tools", default="get_record,whoami", help="tools each client cycles")
    p.add_argument("--chaos", type=float, default=0.0, help="share of Attio calls to fail")
    p.add_argument("--chaos-seed", type=int, default=1)
    p.add_argument("--latency", type=float, default=0.0, help="fake Attio latency, seconds")
    p.add_argument(
        "--bare-uvicorn",
        action="store_true",
        help="run the `uvicorn` command itself instead of `python -m attio_portal.serve`: with "
        "several workers, Nagle's algorithm stays on in them (see bench/README.md)",
    )
    p.add_argument("--database", default="portal_bench_load")
    p.add_argument("--admin-url", default=ADMIN_URL, help="a database the role can connect to")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--keep-database", action="store_true")
    return p.parse_args(argv)


# --- processes and data --------------------------------------------------------------------


def start_fake(args, workdir: Path, api_key: str):
    log_path = workdir / "fake.log"
    command = [
        str(BIN / "python"),
        "-m",
        "tests.fake_attio",
        "--port",
        "0",
        "--quiet",
        "--nodelay",
        "--no-strict-spec",
        "--api-key",
        api_key,
        "--latency",
        str(args.latency),
    ]
    if args.chaos:
        command += [
            "--chaos",
            str(args.chaos),
            "--chaos-seed",
            str(args.chaos_seed),
            "--server-hang-seconds",
            "3",
        ]
    with open(log_path, "w") as log:
        process = spawn(command, {**os.environ, "PYTHONUNBUFFERED": "1"}, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+)", read_log(log_path))
        if found:
            return process, found[1]
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"the fake Attio did not start:\n{read_log(log_path)}")


def configure(args, fake_url: str, port: int) -> dict[str, str]:
    """The gateway's environment (also this process's); then django.setup() and migrate."""
    # 50 clients from one address would trip the per-key limit (300 a minute): this
    # measures the gateway, not the limiter (which still runs on every call). With chaos,
    # a faulted "timeout" hangs 3 s; the gateway gives up after 1 s and retries reads.
    timeout = {"ATTIO_HTTP_TIMEOUT_SECONDS": "1"} if args.chaos else {}
    return set_up_portal(
        args,
        PORTAL_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_LEVEL="WARNING",
        ATTIO_CLIENT_ID="fake-client-id",
        ATTIO_CLIENT_SECRET="fake-client-secret",
        ATTIO_TOKEN_URL=f"{fake_url}/oauth/token",
        ATTIO_API_BASE_URL=fake_url,
        MCP_RATE_LIMIT_PER_MINUTE="100000000",
        **timeout,
    )


def seed(clients: int, attio_key: str) -> list[str]:
    """One user, connection and API key per client; returns the keys' plaintexts."""
    from django.contrib.auth import get_user_model

    from connections.models import Connection
    from mcp_gateway.models import ApiKey
    from tests.fake_attio import FakeAttio

    acme = FakeAttio().workspace("acme")
    keys = []
    for i in range(clients):
        user = get_user_model().objects.create_user(f"load{i}", f"load{i}@bench.test", None)
        connection = Connection.objects.create(
            owner=user,
            method=Connection.Method.API_KEY,
            workspace_id=acme.id,
            workspace_name=acme.name,
            workspace_slug=acme.slug,
            scopes="record_permission:read-write",
        )
        connection.set_credentials(access_token=attio_key, refresh_token=None, expires_at=None)
        connection.save()
        keys.append(ApiKey.objects.issue(user, connection=connection, name="load")[1])
    return keys


# --- figures -------------------------------------------------------------------------------


def cpu_snapshot() -> dict:
    """CPU used so far (user + system, from /proc), per process: {pid: (name, seconds)}
    for this process, each process group of ours and every PostgreSQL process, and
    "machine" for all cores together."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {os.getpgrp(): "client"}
    groups.update(CPU_GROUPS)
    out: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        name = groups.get(int(fields[2])) or ("postgres" if comm == "postgres" else None)
        if name:
            out[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    out["machine"] = ("machine", (sum(map(int, first)) - int(first[3]) - int(first[4])) / tick)
    return out


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds between two snapshots by name (processes that ended meanwhile are missed)."""
    used: Counter = Counter({"client": 0, "gateway": 0, "fake": 0, "postgres": 0})
    for key, (name, seconds) in after.items():
        used[name] += seconds - before.get(key, (name, 0.0))[1]
    return {name: round(seconds, 1) for name, seconds in used.items()}


# Process groups to account CPU to: {pgid: name}, filled in as they start.
CPU_GROUPS: dict[int, str] = {}


def error_kind(tool: str, text: str) -> str:
    problem = error_problem(tool, text)
    if problem:
        return f"UNCLEAR ({problem}): {text[:120]}"
    found = re.search(r"Attio: (.+?) \(", text)
    return f"tool error: {found[1] if found else text[:80]}"


def figures(result: LoadResult, duration: float) -> dict:
    calls = [c for c in result.calls if c.tool != "(session)"]
    out: dict = {
        "calls": len(calls),
        "ok": sum(c.outcome == "ok" for c in calls),
        "tool_errors": sum(c.outcome == "tool_error" for c in calls),
        "exceptions": sum(c.outcome == "exception" for c in result.calls),
        "http_5xx": len(result.server_errors),
        "http_statuses": {str(k): v for k, v in sorted(result.http_statuses.items())},
        "calls_per_second": len(calls) / duration,
        "sessions": result.sessions,
    }
    for tool in [None, *sorted({c.tool for c in calls})]:
        seconds = sorted(c.seconds for c in calls if tool is None or c.tool == tool)
        if not seconds:
            continue
        out["latency_ms" if tool is None else f"latency_ms.{tool}"] = {
            "n": len(seconds),
            "p50": round(percentile(seconds, 50) * 1000, 1),
            "p90": round(percentile(seconds, 90) * 1000, 1),
            "p99": round(percentile(seconds, 99) * 1000, 1),
            "max": round(seconds[-1] * 1000, 1),
        }
    breakdown: Counter = Counter()
    for c in result.calls:
        if c.outcome == "tool_error":
            breakdown[error_kind(c.tool, c.text)] += 1
        elif c.outcome == "exception":
            breakdown[f"EXCEPTION: {c.text[:120]}"] += 1
    breakdown.update(f"HTTP {status} ({method})" for status, method, _ in result.server_errors)
    out["errors"] = dict(breakdown.most_common())
    return out


def report(args, out: dict) -> None:
    print(
        f"\n{args.clients} MCP clients, {args.duration:.0f} s, {args.workers} uvicorn workers, "
        f"tools {args.tools}, chaos {args.chaos:.0%}"
    )
    print(
        f"calls {out['calls']}  ok {out['ok']}  tool errors {out['tool_errors']}  "
        f"exceptions {out['exceptions']}  HTTP 5xx {out['http_5xx']}  "
        f"calls/s {out['calls_per_second']:.1f}"
    )
    for name, value in out.items():
        if name.startswith("latency_ms"):
            label = name.removeprefix("latency_ms").lstrip(".") or "all"
            print(
                f"  {label:12} n={value['n']:6}  p50 {value['p50']:7.1f} ms  "
                f"p90 {value['p90']:7.1f} ms  p99 {value['p99']:7.1f} ms  "
                f"max {value['max']:7.1f} ms"
            )
    if out["errors"]:
        print("errors:")
        for kind, n in out["errors"].items():
            print(f"  {n:6}  {kind}")
    cpu = out["cpu_seconds"]
    print(
        f"CPU seconds during the run: client {cpu['client']}, gateway workers {cpu['gateway']}, "
        f"fake Attio {cpu['fake']}, PostgreSQL {cpu['postgres']}; machine {cpu['machine']} "
        f"of {args.duration * (os.cpu_count() or 1):.0f} available"
    )
    print(f"load average before/after: {out['loadavg_before']} / {out['loadavg_after']}")


def failed(args, out: dict) -> bool:
    if not args.chaos:
        return out["calls"] == 0 or out["ok"] != out["calls"] or out["exceptions"] > 0
    unclear = [k for k in out["errors"] if not k.startswith("tool error:")]
    return out["calls"] == 0 or bool(unclear)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    attio_key = "fake_key_" + secrets.token_urlsafe(24)
    fake = web = None
    try:
        fake, fake_url = start_fake(args, workdir, attio_key)
        CPU_GROUPS[fake.pid] = "fake"
        recreate_database(args)
        port = free_port()
        env = configure(args, fake_url, port)
        keys = seed(args.clients, attio_key)
        from tests.fake_attio import FakeAttio

        ada = FakeAttio().record_id("people", "Ada Lovelace", workspace="acme")
        arguments = {
            "get_record": {"object": "people", "record_id": ada},
            "whoami": {},
            "query_records": {"object": "people", "limit": 5},
        }

        def next_call(i: int, n: int) -> tuple[str, dict]:
            tool = tools[(i + n) % len(tools)]
            return tool, arguments.get(tool, {})

        log_path = workdir / "uvicorn.log"
        with open(log_path, "w") as log:
            launcher = [str(BIN / "uvicorn")] if args.bare_uvicorn else None
            web = start_uvicorn(env, port, log, workers=args.workers, launcher=launcher)
        CPU_GROUPS[web.pid] = "gateway"
        # The MCP app's own metadata: Django's pages want collected static files with DEBUG off.
        wait_until_serving(
            f"http://127.0.0.1:{port}", web, path="/.well-known/oauth-protected-resource/mcp"
        )
        url = f"http://127.0.0.1:{port}/mcp"
        if args.warmup:
            asyncio.run(run_clients(url, keys, args.clients, args.warmup, next_call))
        before = os.getloadavg()
        cpu_before = cpu_snapshot()
        result = asyncio.run(run_clients(url, keys, args.clients, args.duration, next_call))
        out = figures(result, result.elapsed)
        out["cpu_seconds"] = cpu_used(cpu_before, cpu_snapshot())
        out["loadavg_before"] = [round(x, 2) for x in before]
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        out["config"] = {k: v for k, v in vars(args).items() if k not in ("admin_url",)}
        report(args, out)
        if "Traceback" in read_log(log_path, tail=10**7):
            print(f"tracebacks in the gateway's log: {log_path}")
            out["gateway_tracebacks"] = True
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        return 1 if failed(args, out) or out.get("gateway_tracebacks") else 0
    finally:
        stop(web)
        stop(fake)
        if not args.keep_database:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # Django was never set up
                pass
            drop_database(args)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark one full connection sweep against the fake Attio.

    .venv/bin/python bench/sweep.py [--connections 10000] [--workspaces 100]
        [--latency 0.05] [--concurrency 16[,32,...]] [--refreshing-share 0.2]
        [--series 1000,3000,10000] [--mode command|celery|both]
        [--celery-pool threads] [--celery-concurrency 32] [--json results.json]

It creates a PostgreSQL database of its own (portal_bench, dropped at the end),
serves the fake Attio in a subprocess (bench/fake_server.py) with N generated
workspaces, seeds users and connections (a share refreshing, the rest due for
validation), runs one full sweep per configuration and prints wall time, Attio
calls, and the peak calls per second per workspace over any 1 s sliding window.

Over 600 lines on purpose: one benchmark is one script (set-up, the runs, the report) so
that its figures in bench/README.md can be reproduced from the file alone.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.stats import (  # noqa: E402
    ATTIO_READS_PER_SECOND,
    ATTIO_WRITES_PER_SECOND,
    CallFigures,
    call_figures,
)
from bench.support import (  # noqa: E402 (after the path fix above)
    admin_sql,
    cpu_seconds,
    drop_database,
    recreate_database,
    set_up_portal,
)
from tests.faults.harness import stop  # noqa: E402

ADMIN_URL = "postgres://portal:portal@127.0.0.1:5432/portal"
BIN = Path(sys.executable).parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--workspaces", type=int, default=100)
    p.add_argument("--latency", type=float, default=0.05, help="fake Attio latency, seconds")
    p.add_argument(
        "--concurrency",
        default="16",
        help="sweep_connections --concurrency; a comma list runs each",
    )
    p.add_argument("--refreshing-share", type=float, default=0.2)
    p.add_argument(
        "--fake-nagle",
        action="store_true",
        help="serve the fake as tests/fake_attio binds it (Nagle on, ~40 ms more per call)",
    )
    p.add_argument("--series", help="comma list of connection counts, e.g. 1000,3000,10000")
    p.add_argument("--mode", choices=("command", "celery", "both"), default="command")
    p.add_argument("--celery-pool", choices=("threads", "prefork"), default="threads")
    p.add_argument("--celery-concurrency", type=int, default=32)
    p.add_argument(
        "--profile",
        help="write cProfile stats of the sweep to this file (use --concurrency 1: "
        "cProfile sees only the main thread)",
    )
    p.add_argument("--dump-calls", help="write the sweep's calls [t, endpoint, ws, status]")
    p.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    p.add_argument("--database", default="portal_bench")
    p.add_argument("--admin-url", default=ADMIN_URL, help="a database the role can connect to")
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="broker for --mode celery (a database index of its own; a queue of its own)",
    )
    p.add_argument("--log-level", default="WARNING", help="the portal's LOG_LEVEL")
    p.add_argument("--timeout", type=float, default=600, help="give up on one sweep after this")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    return p.parse_args(argv)


# --- the database ------------------------------------------------------------------


def db_sessions(args) -> int:
    """Connections ever opened to the bench database (PostgreSQL 14+ statistics)."""
    row = admin_sql(
        args, "SELECT sessions FROM pg_stat_database WHERE datname = %s", [args.database]
    )
    return int(row[0]) if row else 0


# --- the fake Attio ------------------------------------------------------------------


class Fake:
    """The fake Attio subprocess and its control routes."""

    def __init__(self, workspaces: int, latency: float, nagle: bool = False):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fake_server",
                "--workspaces",
                str(workspaces),
                "--latency",
                str(latency),
                *(["--nagle"] if nagle else []),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.url = self.proc.stdout.readline().split()[1]
        _, self.client_id, self.client_secret = self.proc.stdout.readline().split()
        deadline = time.monotonic() + 20
        while True:
            try:
                self.log()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the fake Attio did not start") from None
                time.sleep(0.1)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def tokens(self, plan: list[tuple[str, str]]) -> list[dict]:
        out: list[dict] = []
        for start in range(0, len(plan), 5000):
            out += self._call("POST", "/_bench/tokens", {"plan": plan[start : start + 5000]})[
                "tokens"
            ]
        return out

    def clear(self) -> None:
        self._call("POST", "/_bench/clear", {})

    def log(self) -> dict:
        return self._call("GET", "/_bench/log")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        stop(self.proc)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# --- environment and Django ----------------------------------------------------------


def configure(args, fake: Fake, queue: str) -> dict[str, str]:
    """The environment for this process and the Celery worker; then django.setup()."""
    return set_up_portal(
        args,
        LOG_LEVEL=args.log_level,
        ATTIO_CLIENT_ID=fake.client_id,
        ATTIO_CLIENT_SECRET=fake.client_secret,
        ATTIO_AUTHORIZE_URL=f"{fake.url}/authorize",
        ATTIO_TOKEN_URL=f"{fake.url}/oauth/token",
        ATTIO_REVOKE_URL=f"{fake.url}/oauth/revoke",
        ATTIO_INTROSPECT_URL=f"{fake.url}/oauth/introspect",
        ATTIO_API_BASE_URL=fake.url,
        # Never the filesystem broker under var/: a queue of our own on the local Redis.
        CELERY_BROKER_URL=args.redis_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )


# --- seeding ---------------------------------------------------------------------------


@dataclass
class Seeded:
    workspace_of: dict  # every seeded access and refresh token -> its workspace id
    connections: int
    refreshing: int
    validating: int
    per_workspace_max_validating: int
    per_workspace_max_refreshing: int


def is_refreshing(index_in_workspace: int, share: float) -> bool:
    # Spreads the share evenly through each workspace's connections.
    return math.floor((index_in_workspace + 1) * share) > math.floor(index_in_workspace * share)


def seed(count: int, workspace_ids: list[str], share: float, fake: Fake) -> Seeded:
    from collections import Counter

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management.color import no_style
    from django.db import connection as db
    from django.utils import timezone

    from connections.models import Connection

    user_model = get_user_model()
    with db.cursor() as cursor:
        cursor.execute(
            "TRUNCATE connections_connection, connections_auditevent, "
            "connections_pendingrevocation, auth_user RESTART IDENTITY CASCADE"
        )
    rows = []
    for i in range(count):
        number, index = i % len(workspace_ids), i // len(workspace_ids)
        # Staggered by workspace, so small counts still get their share of refreshes.
        rows.append((workspace_ids[number], is_refreshing(index + number, share)))
    tokens = fake.tokens([(w, "oauth" if r else "api_key") for w, r in rows])

    now = timezone.now()
    margin = settings.CONNECTION_REFRESH_MARGIN
    users = [
        user_model(pk=i + 1, username=f"bench{i}", email=f"bench{i}@bench.test", password="!")
        for i in range(count)
    ]
    user_model.objects.bulk_create(users, batch_size=2000)
    connections = []
    for i, ((workspace, refreshing), token) in enumerate(zip(rows, tokens, strict=True)):
        number = i % len(workspace_ids)
        c = Connection(
            pk=i + 1,
            owner_id=i + 1,
            method=Connection.Method.OAUTH if refreshing else Connection.Method.API_KEY,
            status=Connection.Status.ACTIVE,
            workspace_id=workspace,
            workspace_name=f"Bench workspace {number:03d}",
            workspace_slug=f"bench-{number:03d}",
            scopes="record_permission:read-write user_management:read",
            # Refreshing: checked lately, but the token expires within the margin.
            # Validating: an API key (never expires) last checked two hours ago.
            last_checked_at=now - (timedelta(minutes=5) if refreshing else timedelta(hours=2)),
        )
        c.set_credentials(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_at=now + margin / 2 if refreshing else None,
        )
        connections.append(c)
    Connection.objects.bulk_create(connections, batch_size=1000)
    with db.cursor() as cursor:
        for sql in db.ops.sequence_reset_sql(no_style(), [user_model, Connection]):
            cursor.execute(sql)
        cursor.execute("ANALYZE connections_connection")
    validating = Counter(w for w, r in rows if not r)
    refreshing = Counter(w for w, r in rows if r)
    workspace_of = {}
    for (workspace, _), token in zip(rows, tokens, strict=True):
        workspace_of[token["access_token"]] = workspace
        if token.get("refresh_token"):
            workspace_of[token["refresh_token"]] = workspace
    return Seeded(
        workspace_of=workspace_of,
        connections=count,
        refreshing=sum(refreshing.values()),
        validating=sum(validating.values()),
        per_workspace_max_validating=max(validating.values(), default=0),
        per_workspace_max_refreshing=max(refreshing.values(), default=0),
    )


# --- one sweep -------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    connections: int
    workspaces: int
    concurrency: str
    latency: float
    wall: float = 0.0
    claim_seconds: float = 0.0
    plan_seconds: float = 0.0  # the last offset plan_sweep gave
    validations: int = 0
    refreshes: int = 0
    other_calls: int = 0
    failed_calls: dict = field(default_factory=dict)
    calls_per_second: float = 0.0
    peak_total_per_second: int = 0
    peak_read_per_workspace: int = 0
    peak_write_per_workspace: int = 0
    peak_read_at: float = 0.0  # where the peak 1 s window starts, seconds into the sweep
    peak_write_at: float = 0.0
    workspaces_over_share: int = 0  # above SWEEP_READS/WRITES_PER_SECOND in some window
    # The same peaks from the sweep's side (when it sent each call; command mode only).
    sent_peak_read_per_workspace: int = 0
    sent_peak_write_per_workspace: int = 0
    fake_peak_read_per_workspace: int = 0
    workspaces_over_budget: int = 0
    sweep_cpu_seconds: float = 0.0  # this process (command) or the worker (celery)
    fake_cpu_seconds: float = 0.0
    db_sessions_opened: int = 0
    machine_busy: float = 0.0  # share of both cores busy during the sweep (/proc/stat)
    outcome: str = ""
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class ClaimTimer:
    """Wraps sweep.claim_due_connections to time it and keep the plan's length."""

    def __init__(self):
        from connections import sweep

        self.sweep = sweep
        self.original = sweep.claim_due_connections
        self.seconds = 0.0
        self.plan_seconds = 0.0

    def __enter__(self):
        def timed(*a, **kw):
            started = time.monotonic()
            items = self.original(*a, **kw)
            self.seconds = time.monotonic() - started
            self.plan_seconds = max((i.offset for i in items), default=0.0)
            return items

        self.sweep.claim_due_connections = timed
        return self

    def __exit__(self, *exc):
        self.sweep.claim_due_connections = self.original


class SendLog:
    """Wraps attio.get_self and attio.refresh_access_token to note when the sweep
    sends each call (client side), so bursts can be told from the fake's own lag."""

    def __init__(self, workspace_of: dict[str, str]):
        from connections import attio

        self.attio = attio
        self.workspace_of = workspace_of
        self.sent: list[tuple[float, str, str]] = []

    def __enter__(self):
        self.originals = (self.attio.get_self, self.attio.refresh_access_token)
        get_self, refresh = self.originals

        def logged_get_self(token):
            self.sent.append((time.monotonic(), "self", self.workspace_of.get(token, "")))
            return get_self(token)

        def logged_refresh(token):
            self.sent.append((time.monotonic(), "refresh", self.workspace_of.get(token, "")))
            return refresh(token)

        self.attio.get_self, self.attio.refresh_access_token = logged_get_self, logged_refresh
        return self

    def __exit__(self, *exc):
        self.attio.get_self, self.attio.refresh_access_token = self.originals


def run_command_sweep(args, concurrency: int, result: Result, sends: SendLog) -> None:
    from django.core.management import call_command

    out = io.StringIO()
    cpu0 = _self_cpu()
    started = time.monotonic()
    profiler = cProfile.Profile() if args.profile else None
    with ClaimTimer() as timer, sends:
        if profiler:
            profiler.enable()
        call_command("sweep_connections", "--concurrency", str(concurrency), "--quiet", stdout=out)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
    result.wall = time.monotonic() - started
    result.sweep_cpu_seconds = _self_cpu() - cpu0
    result.claim_seconds = timer.seconds
    result.plan_seconds = timer.plan_seconds
    result.outcome = out.getvalue().strip().splitlines()[-1]


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    """A Celery worker on the bench queue."""

    def __init__(self, args, env: dict[str, str], queue: str, logfile: Path):
        self.log = open(logfile, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "attio_portal",
                "worker",
                "-P",
                args.celery_pool,
                "--concurrency",
                str(args.celery_concurrency),
                "-Q",
                queue,
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{queue}@%h",
            ],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.name = queue

    def wait_ready(self, timeout: float = 60) -> None:
        from attio_portal.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the Celery worker exited; see its log")
            if app.control.ping(timeout=1.0):
                return
        raise RuntimeError("the Celery worker did not answer a ping")

    def cpu_seconds(self) -> float:
        total = cpu_seconds(self.proc.pid)
        # prefork children
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{self.proc.pid}/task").iterdir():
                children = (child / "children").read_text().split()
                total += sum(cpu_seconds(int(c)) for c in children)
        return total

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def run_celery_sweep(args, worker: Worker, result: Result, since_wall) -> None:
    from django.db.models import Q

    from connections import tasks
    from connections.models import Connection

    cpu0 = worker.cpu_seconds()
    started = time.monotonic()
    tasks.sweep_connections.delay()
    deadline = started + args.timeout
    pending = Q(last_checked_at__lt=since_wall) | Q(sweep_claimed_at__isnull=False)
    while time.monotonic() < deadline:
        if not Connection.objects.filter(pending).exists():
            break
        time.sleep(0.05)
    else:
        result.problems.append(f"not finished after {args.timeout:.0f} s")
    result.wall = time.monotonic() - started
    result.sweep_cpu_seconds = worker.cpu_seconds() - cpu0
    result.outcome = "celery: every connection processed" if not result.problems else ""


# --- checking the outcome --------------------------------------------------------------


def verify(seeded: Seeded, since_wall, figures: CallFigures, result: Result) -> None:
    from collections import Counter

    from django.conf import settings
    from django.utils import timezone

    from connections import sweep
    from connections.models import AuditEvent, Connection

    problems = result.problems
    qs = Connection.objects
    not_active = qs.exclude(status=Connection.Status.ACTIVE).count()
    if not_active:
        problems.append(f"{not_active} connection(s) not active")
    claimed = qs.filter(sweep_claimed_at__isnull=False).count()
    if claimed:
        problems.append(f"{claimed} connection(s) left claimed")
    stale = qs.filter(last_checked_at__lt=since_wall).count()
    if stale:
        problems.append(f"{stale} connection(s) not checked by the sweep")
    errors = Counter(
        qs.exclude(last_error_code="").values_list("last_error_code", "last_error_message")
    )
    if errors:
        problems.append(f"errors recorded: {dict(errors)}")
    refreshed = qs.filter(
        refresh_token_sealed__gt="",
        version=2,
        expires_at__gt=since_wall + settings.CONNECTION_REFRESH_MARGIN,
    ).count()
    if refreshed != seeded.refreshing:
        problems.append(f"{refreshed}/{seeded.refreshing} refreshing connection(s) refreshed")
    validated = qs.filter(refresh_token_sealed="", version=1, last_checked_at__gte=since_wall)
    if validated.count() != seeded.validating:
        problems.append(f"{validated.count()}/{seeded.validating} connection(s) validated")
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESHED).count()
    if events != seeded.refreshing:
        problems.append(f"{events} refreshed audit event(s) for {seeded.refreshing} refreshes")
    still_due = sweep.due_connections(timezone.now()).count()
    if still_due:
        problems.append(f"{still_due} connection(s) still due after the sweep")
    if figures.validations != seeded.validating:
        problems.append(f"{figures.validations} /v2/self calls for {seeded.validating}")
    if figures.refreshes != seeded.refreshing:
        problems.append(f"{figures.refreshes} refresh calls for {seeded.refreshing}")
    if figures.not_ok:
        problems.append(f"non-200 answers: {dict(figures.not_ok)}")
    if figures.workspaces_over_budget:
        problems.append(f"{figures.workspaces_over_budget} workspace(s) over Attio's budget")


# --- the run ---------------------------------------------------------------------------


def one_run(args, mode, count, concurrency, fake, workspace_ids, worker) -> Result:
    from django.db import connections as dbs
    from django.utils import timezone

    seeded = seed(count, workspace_ids, args.refreshing_share, fake)
    dbs.close_all()
    fake.clear()
    sessions0 = db_sessions(args)
    fake_cpu0 = fake.cpu_seconds()
    label = (
        str(concurrency) if mode == "command" else (f"{args.celery_pool}x{args.celery_concurrency}")
    )
    result = Result(mode, count, len(workspace_ids), label, args.latency)
    since_wall = timezone.now()
    since = time.monotonic()
    busy0, total0 = machine_ticks()
    sends = SendLog(seeded.workspace_of)
    if mode == "command":
        run_command_sweep(args, concurrency, result, sends)
    else:
        run_celery_sweep(args, worker, result, since_wall)
    busy1, total1 = machine_ticks()
    result.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    result.fake_cpu_seconds = fake.cpu_seconds() - fake_cpu0
    dbs.close_all()
    time.sleep(1.0)  # let PostgreSQL flush its session statistics
    result.db_sessions_opened = db_sessions(args) - sessions0
    log = fake.log()
    from django.conf import settings

    shares = (settings.SWEEP_READS_PER_SECOND, settings.SWEEP_WRITES_PER_SECOND)
    figures = call_figures(log["calls"], log["fake_peaks"], since, shares)
    result.validations = figures.validations
    result.refreshes = figures.refreshes
    result.other_calls = figures.other
    result.failed_calls = {f"{e} {s}": n for (e, s), n in figures.not_ok.items()}
    result.calls_per_second = figures.total / result.wall if result.wall else 0.0
    result.peak_total_per_second = figures.peak_total
    result.peak_read_per_workspace = figures.peak_read
    result.peak_write_per_workspace = figures.peak_write
    result.fake_peak_read_per_workspace = figures.fake_peak_read
    result.peak_read_at = figures.peak_read_at
    result.peak_write_at = figures.peak_write_at
    result.workspaces_over_share = figures.workspaces_over_share
    if sends.sent:
        sent = [[t, e, w, 200] for t, e, w in sends.sent]
        sent_figures = call_figures(sent, {}, since, shares)
        result.sent_peak_read_per_workspace = sent_figures.peak_read
        result.sent_peak_write_per_workspace = sent_figures.peak_write
    if args.dump_calls:
        dump = {
            "arrived": [[t - since, e, w, s] for t, e, w, s in log["calls"] if t >= since],
            "sent": [[t - since, e, w] for t, e, w in sends.sent],
        }
        Path(args.dump_calls).write_text(json.dumps(dump))
    result.workspaces_over_budget = figures.workspaces_over_budget
    verify(seeded, since_wall, figures, result)
    return result


HEADER = (
    f"{'mode':8} {'conns':>6} {'ws':>4} {'conc':>11} {'wall s':>7} {'claim':>6} "
    f"{'plan':>5} {'/v2/self':>8} {'refresh':>7} {'calls/s':>7} {'rd/ws':>7} "
    f"{'wr/ws':>7} {'>shr':>4} {'cpu s':>6} {'fake':>5} {'busy':>4} {'db conn':>7}  check"
)


def row(r: Result) -> str:
    return (
        f"{r.mode:8} {r.connections:>6} {r.workspaces:>4} {r.concurrency:>11} "
        f"{r.wall:>7.1f} {r.claim_seconds:>6.2f} {r.plan_seconds:>5.1f} {r.validations:>8} "
        f"{r.refreshes:>7} {r.calls_per_second:>7.0f} "
        f"{_peak(r.peak_read_per_workspace, r.sent_peak_read_per_workspace):>7} "
        f"{_peak(r.peak_write_per_workspace, r.sent_peak_write_per_workspace):>7} "
        f"{r.workspaces_over_share:>4} "
        f"{r.sweep_cpu_seconds:>6.1f} "
        f"{r.fake_cpu_seconds:>5.1f} {r.machine_busy:>4.0%} {r.db_sessions_opened:>7}  "
        + ("ok" if r.ok else "; ".join(r.problems))
    )


def _peak(arrived: int, sent: int) -> str:
    return f"{arrived}/{sent}" if sent else str(arrived)


def redis_keys(url: str) -> set[bytes]:
    import redis

    return set(redis.Redis.from_url(url).keys("*"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(c) for c in args.series.split(",")] if args.series else [args.connections]
    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    modes = ["command", "celery"] if args.mode == "both" else [args.mode]
    queue = f"bench-sweep-{os.getpid()}"
    results: list[Result] = []
    recreate_database(args)
    fake = Fake(args.workspaces, args.latency, args.fake_nagle)
    worker = None
    keys_before = redis_keys(args.redis_url) if "celery" in modes else set()
    try:
        env = configure(args, fake, queue)
        from bench.fake_server import workspace_specs

        workspace_ids = [w["id"] for w in workspace_specs(args.workspaces)]
        print(
            f"fake Attio at {fake.url} (subprocess {fake.proc.pid}), {args.workspaces} "
            f"workspaces, latency {args.latency * 1000:.0f} ms; budget per workspace "
            f"{ATTIO_READS_PER_SECOND} reads/s and {ATTIO_WRITES_PER_SECOND} writes/s; "
            "sweep share from settings below",
            flush=True,
        )
        from django.conf import settings

        print(
            f"SWEEP_READS_PER_SECOND={settings.SWEEP_READS_PER_SECOND:g} "
            f"SWEEP_WRITES_PER_SECOND={settings.SWEEP_WRITES_PER_SECOND:g}; "
            f"database {args.database}\n",
            flush=True,
        )
        print(HEADER, flush=True)
        for mode in modes:
            if mode == "celery":
                worker = Worker(args, env, queue, Path(f"/tmp/{queue}-worker.log"))
                worker.wait_ready()
            for count in counts:
                for concurrency in concurrencies if mode == "command" else [0]:
                    for _ in range(args.repeat):
                        result = one_run(
                            args, mode, count, concurrency, fake, workspace_ids, worker
                        )
                        results.append(result)
                        print(row(result), flush=True)
            if worker is not None:
                worker.stop()
                worker = None
    finally:
        if worker is not None:
            worker.stop()
        fake.stop()
        with contextlib.suppress(Exception):
            from django.db import connections as dbs

            dbs.close_all()
        if "celery" in modes:
            _clean_redis(args.redis_url, keys_before, queue)
        if not args.keep_database:
            drop_database(args)
    print(
        "\nwall s: the sweep from start to the last connection handled; claim: claiming "
        "and planning; plan: the last offset plan_sweep gave; rd/ws, wr/ws: most /v2/self "
        "(read) and refresh (write) calls of one workspace in any 1 s window, as the fake "
        "saw them arrive / as the sweep sent them (command mode); >shr: "
        "workspaces above the sweep's share (SWEEP_*_PER_SECOND) in some window; cpu s: CPU "
        "of the sweeping process (celery: the worker); fake: the fake's CPU; busy: both "
        "cores' use, all processes (sweep, fake, PostgreSQL, others); db conn: "
        "PostgreSQL connections opened during the sweep."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2)
        )
    return 0 if all(r.ok for r in results) else 1


def _clean_redis(url: str, before: set[bytes], queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    created = set(client.keys("*")) - before
    # Only keys that did not exist before and that this run's queue or kombu made.
    mine = (queue.encode(), b"unacked", b"_kombu.", b".reply.celery.pidbox")
    for key in created:
        if any(part in key for part in mine):
            client.delete(key)


if __name__ == "__main__":
    sys.exit(main())

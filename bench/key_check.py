"""The MCP credential checks on PostgreSQL (API keys, OAuth tokens): today's paths against
the plain async ORM, side by side.

    .venv/bin/python bench/key_check.py [--keys 100000] [--rounds 5] [--checks 2000]
        [--concurrency 1,16] [--max-seconds 900]

Variants, all in one process and one event loop:

- pg-pool:        `PostgresCredentialChecks.check()` (mcp_gateway/postgres_checks.py):
                  prebuilt SQL on its own psycopg pool, in the event loop (what the
                  gateway runs on PostgreSQL);
- orm:            `CredentialChecks.check()` (mcp_gateway/auth.py): one `sync_to_async` hop
                  with connection upkeep, `select_related(...).first()` and `accept()`
                  (what the gateway runs on any other database);
- afirst:         `ApiKey.objects.select_related("owner", "connection")
                  .filter(public_id=...).afirst()` then `accept()` (Django hops to its
                  thread inside `afirst`); no connection upkeep, so a lower bound;
- afirst-only:    the same with `.only()` of the columns the check and the verifier read;
- pg-pool-no-policy: the same without the tool policies column (models.ToolPolicy, read
                  with the key in a subquery): what the policies cost each check;
- token-pool:      `PostgresCredentialChecks.check_oauth_token()`: an OAuth access token,
                  its refresh token's family, the connected app, user, connection and
                  client in one prebuilt join on the same pool;
- token-orm:       `CredentialChecks.check_oauth_token()`: the same through the ORM in one
                  thread hop (two queries).

Tokens: `--sample` connected apps, each with one access token and its refresh token, as
the authorization server leaves them (hashed), besides the `--keys` keys.

Seeding: one user, one connection, `--keys` keys (bulk_create), `last_used_at` in the
future so no check writes it; 100 users in 20 groups and 20 tool policies, the user under
one policy directly and one through a group (rows for the subquery to find). No check
writes last_used_at (the steady state: the write is once a minute per key).
Each round runs every variant at every concurrency (order rotated round to round), a
short warm-up then `--checks` checks, `--sample` distinct keys in turn; concurrency N is N
coroutines pulling keys, `asyncio.gather`ed. Per run: wall time per check (batch wall /
checks), p50 and p99 of each check's own wall time, CPU per check (`time.process_time()`
over the batch, all of this process's threads, / checks). The table gives the medians
over the rounds and the ratios to pg-pool. The database is created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (  # noqa: E402
    drop_database,
    recreate_database,
    seed_tokens,
    set_up_portal,
)
from tests.faults.harness import percentile  # noqa: E402

ADMIN_URL = "postgres://portal:portal@127.0.0.1:5432/portal"
VARIANTS = (
    "pg-pool", "pg-pool-no-policy", "orm", "afirst", "afirst-only", "token-pool", "token-orm",
)  # fmt: skip
# Columns the check (accept, last_used_at, KeyRefused) and PortalVerifier read.
ONLY = (
    "public_id", "digest", "read_only", "expires_at", "revoked_at", "replaced_by_id",
    "last_used_at", "owner__is_active", "owner__username", "connection__workspace_id",
    "connection__status",
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--keys", type=int, default=100_000, help="API keys in the table")
    p.add_argument("--rounds", type=int, default=5, help="runs of every variant")
    p.add_argument("--checks", type=int, default=2000, help="checks per run")
    p.add_argument("--warmup", type=int, default=200, help="checks before each run")
    p.add_argument("--sample", type=int, default=2000, help="distinct keys presented")
    p.add_argument("--concurrency", default="1,16", help="comma list of checks in flight")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of variants")
    p.add_argument("--max-seconds", type=float, default=900, help="no new round after this")
    p.add_argument("--call-cpu-ms", type=float, default=3.5, help="CPU of a whole tool call")
    p.add_argument("--database", default="portal_bench_keycheck")
    p.add_argument("--admin-url", default=ADMIN_URL, help="a database the role can connect to")
    p.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    return p.parse_args(argv)


def seed(keys: int, sample: int) -> tuple[list[str], list[str]]:
    """`keys` keys for one user and connection, and `sample` OAuth tokens; the plaintext
    of `sample` of the keys and of every token."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from connections.models import Connection
    from mcp_gateway.models import ApiKey, key_digest, new_key

    user = get_user_model().objects.create_user("bench", "bench@bench.test", "!")
    connection = Connection.objects.create(
        owner=user,
        method=Connection.Method.API_KEY,
        workspace_id="74b999b1-888a-5728-91c0-79e4867a2758",
        workspace_name="Acme",
    )
    connection.set_credentials(access_token="bench-token", refresh_token=None, expires_at=None)
    connection.save()
    future = timezone.now() + timedelta(days=365)  # never due: no last_used_at writes
    every = max(1, keys // sample)
    plaintexts, batch = [], []
    for i in range(keys):
        public_id, plaintext = new_key()
        if i % every == 0 and len(plaintexts) < sample:
            plaintexts.append(plaintext)
        batch.append(
            ApiKey(
                owner=user, connection=connection, name=f"bench {i}", public_id=public_id,
                digest=key_digest(plaintext), last_four=plaintext[-4:], last_used_at=future,
            )
        )  # fmt: skip
        if len(batch) == 5000:
            ApiKey.objects.bulk_create(batch)
            batch = []
    ApiKey.objects.bulk_create(batch)
    tokens = seed_tokens(user, connection, sample, last_used_at=future)
    seed_policies(user)
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("ANALYZE")
    return plaintexts, tokens


def seed_policies(user) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from mcp_gateway.models import ToolPolicy

    groups = [Group.objects.create(name=f"group {i}") for i in range(20)]
    policies = [
        ToolPolicy.objects.create(name=f"policy {i}", all_read_tools=i % 2 == 0, tools=["whoami"])
        for i in range(20)
    ]
    for i, policy in enumerate(policies):
        policy.groups.add(groups[i])
    for i in range(100):
        get_user_model().objects.create_user(f"member {i}").groups.add(groups[i % 20])
    user.groups.add(groups[3])
    policies[7].users.add(user)


def make_checks() -> dict:
    """Variant name -> (async check(presented) -> ApiKey | None, async context to run in)."""
    from django.db import connections
    from django.utils import timezone

    from mcp_gateway import auth, postgres_checks
    from mcp_gateway.models import ApiKey
    from mcp_gateway.postgres_checks import PostgresCredentialChecks

    pool = PostgresCredentialChecks(connections["default"])
    # The same checks built with NULL for the policies column.
    real_column = postgres_checks.tool_policies_column
    postgres_checks.tool_policies_column = lambda connection, alias: "NULL"
    try:
        without_policies = PostgresCredentialChecks(connections["default"])
    finally:
        postgres_checks.tool_policies_column = real_column
    assert "json_agg" in pool.query.sql and "json_agg" not in without_policies.query.sql
    orm = auth.CredentialChecks()
    query = ApiKey.objects.select_related("owner", "connection")

    async def afirst(presented: str):
        public_id = auth.public_id_of(presented)
        if public_id is None:
            return None
        key = await query.filter(public_id=public_id).afirst()
        return auth.accept(presented, key, timezone.now())

    async def afirst_only(presented: str):
        public_id = auth.public_id_of(presented)
        if public_id is None:
            return None
        key = await query.only(*ONLY).filter(public_id=public_id).afirst()
        return auth.accept(presented, key, timezone.now())

    return {
        "pg-pool": (pool.check, pool.running),
        "pg-pool-no-policy": (without_policies.check, without_policies.running),
        "orm": (orm.check, orm.running),
        "afirst": (afirst, orm.running),
        "afirst-only": (afirst_only, orm.running),
        "token-pool": (pool.check_oauth_token, pool.running),
        "token-orm": (orm.check_oauth_token, orm.running),
    }


async def run_batch(check, keys: list[str], concurrency: int) -> dict:
    """`keys` checked by `concurrency` coroutines; wall, CPU and each check's wall time."""
    queue = iter(keys)
    times: list[float] = []

    async def worker() -> None:
        for presented in queue:
            started = time.perf_counter()
            found = await check(presented)
            times.append(time.perf_counter() - started)
            if found is None:
                raise AssertionError(f"{presented[:12]}…: not accepted")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    times.sort()
    n = len(keys)
    return {
        "wall_ms": wall / n * 1000,
        "p50_ms": percentile(times, 50) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "cpu_ms": cpu / n * 1000,
    }


async def measure(args, seeded, names: list[str], concurrencies: list[int]):
    checks = make_checks()
    runs: dict[tuple[str, int], list[dict]] = {(n, c): [] for n in names for c in concurrencies}
    keys, tokens = seeded
    position = 0

    def next_keys(count: int, name: str) -> list[str]:
        nonlocal position
        presented = tokens if name.startswith("token") else keys
        out = [presented[(position + i) % len(presented)] for i in range(count)]
        position += count
        return out

    # One loop for the whole run, as in a uvicorn worker: the pool stays open throughout.
    async with checks["pg-pool"][1](), checks["pg-pool-no-policy"][1](), checks["orm"][1]():
        deadline = time.monotonic() + args.max_seconds
        for r in range(args.rounds):
            if r and time.monotonic() > deadline:
                print(f"--max-seconds reached: {r} rounds")
                break
            order = names[r % len(names) :] + names[: r % len(names)]
            for c in concurrencies:
                for name in order:
                    check = checks[name][0]
                    await run_batch(check, next_keys(args.warmup, name), c)
                    result = await run_batch(check, next_keys(args.checks, name), c)
                    runs[name, c].append(result)
                    print(
                        f"round {r + 1} c={c:<3} {name:<14} wall {result['wall_ms']:.3f} "
                        f"p50 {result['p50_ms']:.3f} p99 {result['p99_ms']:.3f} "
                        f"cpu {result['cpu_ms']:.3f} ms/check",
                        flush=True,
                    )
    return runs


def print_table(args, runs, names: list[str], concurrencies: list[int]) -> None:
    med = {
        k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in runs.items() if rs
    }
    print(
        f"\nMedians over {len(runs[names[0], concurrencies[0]])} rounds, {args.checks} "
        "checks each; ratios to pg-pool; ms per check\n"
    )
    print(
        "| c | variant | wall/check | p50 | p99 | CPU/check | CPU range | wall ratio | "
        "CPU ratio | CPU delta | delta / tool call |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for c in concurrencies:
        base = med.get(("pg-pool", c))
        for name in names:
            m = med[name, c]
            cpus = [r["cpu_ms"] for r in runs[name, c]]
            row = [
                str(c), name, f"{m['wall_ms']:.3f}", f"{m['p50_ms']:.3f}",
                f"{m['p99_ms']:.3f}", f"{m['cpu_ms']:.3f}", f"{min(cpus):.3f}-{max(cpus):.3f}",
            ]  # fmt: skip
            if base:
                delta = m["cpu_ms"] - base["cpu_ms"]
                row += [
                    f"{m['wall_ms'] / base['wall_ms']:.2f}x",
                    f"{m['cpu_ms'] / base['cpu_ms']:.2f}x",
                    f"{delta:+.3f}",
                    f"{delta / args.call_cpu_ms:+.0%}",
                ]
            else:
                row += [""] * 4
            print("| " + " | ".join(row) + " |")
    print(
        f"\n'delta / tool call': the CPU delta against a whole tool call's ~{args.call_cpu_ms} "
        "ms of CPU (--call-cpu-ms; bench/README.md)."
    )


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants: {', '.join(sorted(unknown))}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    print(f"load average {load_average()}")
    recreate_database(args)
    try:
        set_up_portal(args, LOG_LEVEL="WARNING", PORTAL_BASE_URL="http://127.0.0.1:8000")
        started = time.monotonic()
        seeded = seed(args.keys, args.sample)
        print(
            f"seeded {args.keys} keys and {args.sample} OAuth tokens in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        runs = asyncio.run(measure(args, seeded, names, concurrencies))
        print_table(args, runs, names, concurrencies)
        print(f"load average {load_average()}")
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()  # this thread's; the ORM thread's go with DROP ... FORCE
        if not args.keep_database:
            drop_database(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The admin's usage page on a big audit trail: how long `mcp_gateway.usage.usage()` (every
query the page makes) takes on PostgreSQL with `--rows` tool calls, read from the rows
themselves and from the days' roll-ups, side by side.

    .venv/bin/python bench/usage.py [--rows 1000000] [--days 90] [--users 50] [--rounds 5]

Seeding: `--rows` ToolCall rows spread evenly over the last `--days` days, over `--users`
users and connections and 40 tool names, 3 % of them failed, durations 20-2,000 ms; written
with one INSERT ... SELECT from generate_series, then ANALYZE and VACUUM (as autovacuum would
leave a table that is mostly appended to). Each round times the page's work for the last
7, 30 and 90 days (all `--rows` rows in the last) before the roll-up ("rows": what the page
costs when beat has not run) and after it ("roll-ups": every day but today rolled up, as
beat leaves them), and the figures are the median and the slowest of the rounds. The
roll-up itself is timed once. The target is under a second for the whole page with a
million rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import drop_database, recreate_database, set_up_portal  # noqa: E402

ADMIN_URL = "postgres://portal:portal@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="tool-call rows")
    p.add_argument("--days", type=int, default=90, help="days the rows are spread over")
    p.add_argument("--users", type=int, default=50, help="users (one connection each)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--database", default="portal_bench_usage")
    p.add_argument("--admin-url", default=ADMIN_URL, help="a database the role can connect to")
    p.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    return p.parse_args(argv)


def seed(rows: int, days: int, users: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection as database

    from connections.models import Connection

    User = get_user_model()
    owners = User.objects.bulk_create(
        User(username=f"user{n:03d}", email=f"user{n:03d}@bench.test") for n in range(users)
    )
    Connection.objects.bulk_create(
        Connection(
            owner=owner,
            method=Connection.Method.API_KEY,
            workspace_id=f"00000000-0000-4000-8000-{n:012d}",
            workspace_name=f"Workspace {n:03d}",
        )
        for n, owner in enumerate(owners)
    )
    first_user = owners[0].pk
    first_connection = Connection.objects.order_by("pk").first().pk
    with database.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO mcp_gateway_toolcall
                (created_at, owner_id, connection_id, tool, operation, record_ids, ok,
                 attio_status, error_code, duration_ms)
            SELECT now() - (%(days)s * interval '1 day') * (n::float / %(rows)s),
                   %(first_user)s + n %% %(users)s,
                   %(first_connection)s + n %% %(users)s,
                   'tool_' || lpad((n %% 40)::text, 2, '0'),
                   '', '[]'::jsonb,
                   n %% 33 <> 0,
                   CASE WHEN n %% 33 = 0 THEN 500 ELSE 200 END,
                   CASE WHEN n %% 33 = 0 THEN 'http_500' ELSE '' END,
                   20 + (n::bigint * 7919) %% 1980
            FROM generate_series(1, %(rows)s) AS n
            """,
            {
                "rows": rows,
                "days": days,
                "users": users,
                "first_user": first_user,
                "first_connection": first_connection,
            },
        )
    with database.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE mcp_gateway_toolcall")


def time_ranges(ranges: dict, today, rounds: int) -> dict[str, list[float]]:
    from mcp_gateway.usage import usage

    timings: dict[str, list[float]] = {name: [] for name in ranges}
    for _ in range(rounds):
        for name, start in ranges.items():
            began = time.perf_counter()
            found = usage(start, today)
            timings[name].append(time.perf_counter() - began)
            assert found.total_calls > 0
    return timings


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    recreate_database(args)
    try:
        set_up_portal(args)
        from django.utils import timezone

        from mcp_gateway.usage import roll_up, usage

        started = time.monotonic()
        seed(args.rows, args.days, args.users)
        print(f"seeded {args.rows:,} rows in {time.monotonic() - started:.0f} s", flush=True)
        today = timezone.now().date()
        ranges = {f"last {n} days": today - timezone.timedelta(days=n - 1) for n in (7, 30, 90)}
        from_rows = time_ranges(ranges, today, args.rounds)
        began = time.perf_counter()
        days = roll_up()
        print(f"rolled up {days} days in {time.perf_counter() - began:.1f} s", flush=True)
        from_roll_ups = time_ranges(ranges, today, args.rounds)
        print(
            f"\n{'range':<14} {'calls':>10} {'rows: median':>14} {'slowest':>9}"
            f" {'roll-ups: median':>18} {'slowest':>9} {'ratio':>6}"
        )
        for name, start in ranges.items():
            calls = usage(start, today).total_calls
            rows, rolled = from_rows[name], from_roll_ups[name]
            print(
                f"{name:<14} {calls:>10,} {statistics.median(rows) * 1000:>11.0f} ms"
                f" {max(rows) * 1000:>6.0f} ms {statistics.median(rolled) * 1000:>15.0f} ms"
                f" {max(rolled) * 1000:>6.0f} ms"
                f" {statistics.median(rows) / statistics.median(rolled):>5.1f}x"
            )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_database:
            drop_database(args)


if __name__ == "__main__":
    main()

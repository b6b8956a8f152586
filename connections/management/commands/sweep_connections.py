"""Run one sweep now, in this process: refresh what expires, validate what's due."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.core.management.base import BaseCommand
from django.db import connection

from connections import attio, services, tasks


def process(item: services.SweepItem) -> str:
    try:
        return services.sweep_one(
            item.connection_id, workspace_id=item.workspace_id, refresh=item.refresh
        )
    except attio.AttioError:
        services.release_sweep_claim(item.connection_id)
        return "failed (transient, kept)"


def close_thread_connections(pool: ThreadPoolExecutor, threads: int) -> None:
    """Close each worker thread's database connection once, at the end.

    Every thread must run one of these jobs: each waits at the barrier until all have
    started, so no thread can take two.
    """
    barrier = threading.Barrier(threads)

    def close() -> None:
        barrier.wait(timeout=30)
        connection.close()

    for future in [pool.submit(close) for _ in range(threads)]:
        future.result()


class Command(BaseCommand):
    help = (
        "Refresh expiring Attio tokens and validate the rest, once, synchronously. "
        "The same work beat schedules every CONNECTION_SWEEP_INTERVAL_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency", type=int, default=16, help="Attio calls in flight at once"
        )
        parser.add_argument("--quiet", action="store_true", help="print only the summary")

    def handle(self, *args, concurrency: int, quiet: bool, **options):
        started = time.monotonic()
        items = services.claim_due_connections()
        revocations = services.claim_due_revocations()
        total = len(items)
        self.stdout.write(f"{total} connection(s) due, {len(revocations)} revocation(s) to retry.")
        outcomes: Counter[str] = Counter()
        pool = ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else None
        if pool is None:
            results = (process(item) for item in items)
        else:
            futures = [pool.submit(process, item) for item in items]
            results = (future.result() for future in as_completed(futures))
        for done, result in enumerate(results, start=1):
            outcomes[str(result)] += 1
            if not quiet and (done % 100 == 0 or done == total):
                elapsed = time.monotonic() - started
                self.stdout.write(f"  {done}/{total} done ({elapsed:.1f} s)")
        if pool is not None:
            close_thread_connections(pool, concurrency)
            pool.shutdown()
        for pending_id in revocations:
            outcomes["revocation retried"] += 1
            tasks.revoke_upstream(pending_id)
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Swept {total} connection(s) in {elapsed:.1f} s: {summary or 'nothing to do'}."
            )
        )

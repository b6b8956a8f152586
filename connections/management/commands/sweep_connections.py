"""Run one sweep now, in this process: what beat's sweep does, with a progress display."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from connections import sweep


class Command(BaseCommand):
    help = (
        "Refresh expiring Attio tokens and validate the rest, retry pending revocations at "
        "Attio and send unsent reconnect notices, once, synchronously. The same work beat "
        "schedules every CONNECTION_SWEEP_INTERVAL_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.CONNECTION_SWEEP_CONCURRENCY,
            help="Attio calls in flight at once (default CONNECTION_SWEEP_CONCURRENCY)",
        )
        parser.add_argument("--quiet", action="store_true", help="print only the summary")

    def handle(self, *args, concurrency: int, quiet: bool, **options):
        started = time.monotonic()
        total = 0
        done = 0

        def claimed(connections: int, revocations: int) -> None:
            nonlocal total
            total = connections
            noun = ngettext("connection", "connections", connections)
            retries = ngettext("revocation", "revocations", revocations)
            self.stdout.write(f"{connections} {noun} due, {revocations} {retries} to retry.")

        def progress(outcome: str) -> None:
            nonlocal done
            done += 1
            if not quiet and (done % 100 == 0 or done == total):
                elapsed = time.monotonic() - started
                self.stdout.write(f"  {done}/{total} done ({elapsed:.1f} s)")

        in_process = sweep.Sweep(
            concurrency=concurrency,
            # A transient failure is recorded on the connection; the next sweep retries.
            on_transient=lambda connection_id, error: sweep.release_sweep_claim(connection_id),
            on_done=progress,
        )
        work = sweep.sweep_connections(in_process=in_process, on_claimed=claimed)
        elapsed = time.monotonic() - started
        noun = ngettext("connection", "connections", total)
        summary = ", ".join(f"{count} {name}" for name, count in sorted(work.outcomes.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Swept {total} {noun} in {elapsed:.1f} s: {summary or 'nothing to do'}."
            )
        )

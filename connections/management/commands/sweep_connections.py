"""Run one sweep now, in this process: refresh what expires, validate what's due."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from connections import services, tasks


class Command(BaseCommand):
    help = (
        "Refresh expiring Attio tokens and validate the rest, once, synchronously. "
        "The same work beat schedules every CONNECTION_SWEEP_INTERVAL_SECONDS."
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
        items = services.claim_due_connections()
        revocations = services.claim_due_revocations()
        total = len(items)
        connections = ngettext("connection", "connections", total)
        retries = ngettext("revocation", "revocations", len(revocations))
        self.stdout.write(f"{total} {connections} due, {len(revocations)} {retries} to retry.")
        done = 0

        def progress(outcome: str) -> None:
            nonlocal done
            done += 1
            if not quiet and (done % 100 == 0 or done == total):
                elapsed = time.monotonic() - started
                self.stdout.write(f"  {done}/{total} done ({elapsed:.1f} s)")

        sweep = services.Sweep(
            concurrency=concurrency,
            # A transient failure is recorded on the connection; the next sweep retries.
            on_transient=lambda connection_id, error: services.release_sweep_claim(connection_id),
            on_done=progress,
        )
        outcomes = sweep.run([item.connection_id for item in items])
        for pending_id in revocations:
            outcomes["revocation retried"] += 1
            tasks.revoke_upstream(pending_id)
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Swept {total} {connections} in {elapsed:.1f} s: {summary or 'nothing to do'}."
            )
        )

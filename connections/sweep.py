"""The sweep: claim what is due, pace it per workspace, refresh or validate it in batches.

`sweep_connections` is one sweep, as beat's `sweep_connections` task and `manage.py
sweep_connections` both run it: the due connections, the upstream revocations due for
another try, and the reconnect notices not yet sent. Refreshes go through
freshness.ensure_fresh under the row lock; validations go through the same
freshness.validate_connection without it, their passes written a batch at a time.
"""

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import ngettext

from . import attio, freshness, services, tasks
from .freshness import Outcome, PassedCheck, will_refresh
from .models import Connection, PendingRevocation

logger = logging.getLogger(__name__)

# Connections per Celery sweep task. A batch of refreshes of one workspace takes
# SWEEP_BATCH_SIZE / SWEEP_WRITES_PER_SECOND seconds, well within the task time limit.
SWEEP_BATCH_SIZE = 200
# Claimed rows are read from the database this many at a time, just before their turn,
# and passed checks are written this many at a time (or every SWEEP_FLUSH_SECONDS).
SWEEP_CHUNK = 100
SWEEP_FLUSH_SECONDS = 0.5


# --- Pacing -----------------------------------------------------------------------------


class WorkspacePacer:
    """Keeps each workspace's calls within the sweep's share of Attio's budget
    (SWEEP_READS_PER_SECOND validations, SWEEP_WRITES_PER_SECOND refreshes).

    Every call books its workspace's next free slot, so a backlog can't burst. The plan
    books on a clock that starts at 0 (offsets into the sweep); the batches book on
    `time.monotonic()` as each call is about to go out, and wait for their slot.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_free: dict[tuple[str, bool], float] = defaultdict(float)

    def book(self, workspace_id: str, *, write: bool, at: float | None = None) -> float:
        """The time of the next free slot at or after `at` (default: now), now taken."""
        rate = settings.SWEEP_WRITES_PER_SECOND if write else settings.SWEEP_READS_PER_SECOND
        key = (workspace_id, write)
        with self.lock:
            now = time.monotonic() if at is None else at
            slot = max(now, self.next_free[key])
            self.next_free[key] = slot + 1.0 / rate
        return slot

    def wait(self, workspace_id: str, *, write: bool) -> None:
        delay = self.book(workspace_id, write=write) - time.monotonic()
        if delay > 0:
            time.sleep(delay)


# This process's calls: the threads of a batch, and every batch a worker runs.
pacer = WorkspacePacer()


# --- Claims and the plan ----------------------------------------------------------------


@dataclass
class SweepItem:
    connection_id: int
    workspace_id: str
    refresh: bool
    # Seconds after the sweep starts at which this connection may be processed, so
    # no workspace gets more than the sweep's share of Attio's budget.
    offset: float


def due_connections(now):
    margin = settings.CONNECTION_REFRESH_MARGIN
    due = (
        Q(refresh_token_sealed__gt="", expires_at__lte=now + margin)
        | Q(last_checked_at__isnull=True)
        | Q(last_checked_at__lte=now - settings.CONNECTION_VALIDATE_INTERVAL)
        | Q(expires_at__lte=now)
    )
    unclaimed = Q(sweep_claimed_at__isnull=True) | Q(
        sweep_claimed_at__lte=now - settings.CONNECTION_SWEEP_CLAIM_TTL
    )
    return Connection.objects.active().exclude(access_token_sealed="").filter(due, unclaimed)


def claim_due_connections(*, now=None, limit: int | None = None) -> list[SweepItem]:
    """Claim the connections that are due and plan when each may be processed.

    Claiming marks rows so that a second sweep running at the same time, or soon after,
    leaves them alone; each claim is released when its connection has been handled.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            due_connections(now)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "workspace_id", "refresh_token_sealed", "expires_at")[:limit]
        )
        set_sweep_claims([row[0] for row in rows], now)
    return plan_sweep(
        [
            (pk, workspace, will_refresh(sealed, expires, now))
            for pk, workspace, sealed, expires in rows
        ]
    )


def plan_sweep(rows: list[tuple[int, str, bool]]) -> list[SweepItem]:
    """Space each workspace's calls at the sweep's rate; interleave workspaces."""
    planner = WorkspacePacer()
    items = [
        SweepItem(pk, workspace, refresh, planner.book(workspace, write=refresh, at=0.0))
        for pk, workspace, refresh in rows
    ]
    items.sort(key=lambda item: (item.offset, item.connection_id))
    return items


def sweep_batches(items: list[SweepItem]) -> list[tuple[float, list[int]]]:
    """The plan cut into consecutive batches of SWEEP_BATCH_SIZE: (start offset, ids)."""
    return [
        (batch[0].offset, [item.connection_id for item in batch])
        for batch in _chunks(items, SWEEP_BATCH_SIZE)
    ]


def set_sweep_claims(connection_ids: list[int], at) -> None:
    """Claim (a time) or release (None) connections, in batches the database accepts."""
    for chunk in _chunks(connection_ids, 500):
        Connection.objects.filter(pk__in=chunk).update(sweep_claimed_at=at)


def release_sweep_claim(connection_id: int) -> None:
    Connection.objects.filter(pk=connection_id).update(sweep_claimed_at=None)


def claim_due_revocations(now=None) -> list[int]:
    """Pending upstream revocations whose next attempt is due, claimed for a while."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            PendingRevocation.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .order_by("pk")
            .values_list("pk", flat=True)[:500]
        )
        PendingRevocation.objects.filter(pk__in=ids).update(
            next_attempt_at=now + settings.CONNECTION_SWEEP_CLAIM_TTL
        )
    return ids


def unnotified_connections() -> list[int]:
    """Connections that need reconnecting whose owner hasn't been told yet."""
    return list(
        Connection.objects.filter(
            status=Connection.Status.NEEDS_RECONNECT, notified_at__isnull=True
        ).values_list("pk", flat=True)[:500]
    )


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- One sweep --------------------------------------------------------------------------


@dataclass
class SweepWork:
    """What one sweep found to do, and (run in this process) how each item went."""

    connections: int
    revocations: int
    notices: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def sweep_connections(*, in_process: "Sweep | None" = None, on_claimed=None) -> SweepWork:
    """One sweep: the due connections, the due upstream revocations, the unsent notices.

    Without `in_process` (beat's task) the work is fanned out as Celery tasks:
    `sweep_batch` per batch of connections, each starting at its first connection's slot
    in the plan, `revoke_upstream` and `notify_needs_reconnect`. With `in_process`, a
    Sweep (`manage.py sweep_connections`), all of it is done here, synchronously.
    `on_claimed(connections, revocations)` is called with the counts claimed, before
    any of it is done.
    """
    items = claim_due_connections()
    revocations = claim_due_revocations()
    work = SweepWork(connections=len(items), revocations=len(revocations))
    if on_claimed is not None:
        on_claimed(work.connections, work.revocations)
    if in_process is None:
        _send_batches(items, revocations)
        for pending_id in revocations:
            tasks.revoke_upstream.delay(pending_id)
    else:
        work.outcomes = in_process.run([item.connection_id for item in items])
        for pending_id in revocations:
            services.revoke_upstream(pending_id)
            work.outcomes["revocation retried"] += 1
    # Owners not yet told that a connection needs reconnecting (the broker may have been
    # down when it happened, or this sweep just found it); looked up after the
    # connections are handled, and notify_needs_reconnect sends at most one email each.
    notices = unnotified_connections()
    work.notices = len(notices)
    for connection_id in notices:
        if in_process is None:
            tasks.notify_needs_reconnect.delay(connection_id)
        elif freshness.notify_needs_reconnect(connection_id):
            work.outcomes["reconnect notice sent"] += 1
    # Beat runs this every minute: a line only when there is something to do.
    if items or revocations or notices:
        logger.info(
            "Sweep: %s due, %s to retry at Attio, %s to send",
            plural(len(items), "connection"),
            plural(len(revocations), "revocation"),
            plural(len(notices), "reconnect notice"),
        )
    return work


def _send_batches(items: list[SweepItem], revocations: list[int]) -> None:
    batches = sweep_batches(items)
    for sent, (offset, connection_ids) in enumerate(batches):
        try:
            tasks.sweep_batch.apply_async((connection_ids,), countdown=offset)
        except Exception:
            # The broker went away mid-sweep: unclaim what wasn't sent (the revocations
            # too, claimed with the connections but not sent yet), so the next sweep picks
            # it up instead of waiting for the claims to lapse.
            set_sweep_claims([pk for _, ids in batches[sent:] for pk in ids], None)
            PendingRevocation.objects.filter(pk__in=revocations).update(
                next_attempt_at=timezone.now()
            )
            raise


def sweep_batch(connection_ids: list[int]) -> Counter[str]:
    """Refresh or validate a batch of claimed connections (a `sweep_batch` task); one
    that fails transiently goes on alone, as a `refresh_connection` task with backoff."""
    batch = Sweep(concurrency=settings.CONNECTION_SWEEP_CONCURRENCY, on_transient=_retry_alone)
    outcomes = batch.run(connection_ids)
    summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    logger.info("Swept %s: %s", plural(len(connection_ids), "connection"), summary)
    return outcomes


def _retry_alone(connection_id: int, error: attio.AttioError) -> None:
    try:
        tasks.refresh_connection.apply_async(
            (connection_id,), countdown=tasks.retry_delay(0, error.retry_after)
        )
    except Exception:  # noqa: BLE001 - the broker is away; the next sweep retries
        logger.warning("Could not queue a retry for connection %s", connection_id, exc_info=True)
        release_sweep_claim(connection_id)


def refresh_connection(connection_id: int) -> Outcome:
    """ensure_fresh for one connection on its own (a `refresh_connection` task, the retry
    of a transient failure), after waiting for its workspace's next free slot.

    The wait happens before the row is locked, so nothing is held while pacing.
    """
    row = (
        Connection.objects.filter(pk=connection_id)
        .values_list("workspace_id", "refresh_token_sealed", "expires_at")
        .first()
    )
    if row is None:
        return Outcome.SKIPPED
    workspace_id, sealed, expires_at = row
    pacer.wait(workspace_id, write=will_refresh(sealed, expires_at, timezone.now()))
    return freshness.ensure_fresh(connection_id)


def plural(count: int, noun: str) -> str:
    return f"{count} {ngettext(noun, noun + 's', count)}"


# --- The batched sweep ------------------------------------------------------------------


class Sweep:
    """One pass over claimed connections, with `concurrency` Attio calls at a time.

    Refreshes go through ensure_fresh, under the row lock: a refresh token works once.
    Validations are only reads, so they go through validate_connection without a lock,
    and their passes are written together, each row only if its credentials and status
    are still what the check saw. A transient failure is recorded on the connection and
    handed to `on_transient(connection_id, error)`, which keeps or releases the claim;
    `on_done(outcome)` is called after each connection, one call at a time.
    """

    def __init__(self, *, concurrency: int, on_transient, on_done=None) -> None:
        self.concurrency = max(1, concurrency)
        self.on_transient = on_transient
        self.on_done = on_done
        self.outcomes: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.passed: list[PassedCheck] = []
        self.released: list[int] = []

    def run(self, connection_ids: list[int]) -> Counter[str]:
        if self.concurrency == 1:
            # In the calling thread (and its database transaction, if any).
            for chunk in _chunks(connection_ids, SWEEP_CHUNK):
                rows = Connection.objects.in_bulk(chunk)
                for pk in chunk:
                    self.handle(pk, rows.get(pk))
                self.flush()
            return self.outcomes
        # A bounded queue: a row is read at most about 2 x SWEEP_CHUNK connections ahead
        # of its check, so what it says (revoked, refreshed...) is seconds old at most.
        work: queue.Queue = queue.Queue(maxsize=SWEEP_CHUNK)
        threads = [
            threading.Thread(target=self._work, args=(work,), name=f"sweep-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            for chunk in _chunks(connection_ids, SWEEP_CHUNK):
                rows = Connection.objects.in_bulk(chunk)
                for pk in chunk:
                    self._put(work, (pk, rows.get(pk)))
        finally:
            for _ in threads:
                self._put(work, None)
            for thread in threads:
                while thread.is_alive():
                    thread.join(SWEEP_FLUSH_SECONDS)
                    self.flush()
            self.flush()
        return self.outcomes

    def _put(self, work: queue.Queue, job) -> None:
        while True:
            try:
                work.put(job, timeout=SWEEP_FLUSH_SECONDS)
                return
            except queue.Full:
                self.flush()

    def _work(self, work: queue.Queue) -> None:
        try:
            while (job := work.get()) is not None:
                self.handle(*job)
        finally:
            db_connection.close()

    def handle(self, connection_id: int, connection: Connection | None) -> None:
        try:
            outcome = str(self._sweep(connection_id, connection))
        except attio.AttioError as e:
            outcome = "failed (transient)"
            self.on_transient(connection_id, e)
        except Exception:
            # Left claimed: the claim lapses and a later sweep tries again.
            logger.exception("Sweeping connection %s failed", connection_id)
            outcome = "failed (error)"
        with self.lock:
            self.outcomes[outcome] += 1
            if self.on_done is not None:
                self.on_done(outcome)

    def _sweep(self, connection_id: int, connection: Connection | None) -> Outcome:
        if connection is None or not connection.is_usable:
            self._release(connection_id)
            return Outcome.SKIPPED
        now = timezone.now()
        if will_refresh(connection.refresh_token_sealed, connection.expires_at, now):
            pacer.wait(connection.workspace_id, write=True)
            return freshness.ensure_fresh(connection_id)
        if not freshness.due_for_validation(connection, now):
            self._release(connection_id)
            return Outcome.FRESH
        pacer.wait(connection.workspace_id, write=False)
        try:
            return freshness.validate_connection(connection, now, record_pass=self._passed)
        except attio.AttioError as e:
            freshness.record_transient_failure(connection_id, e, by=None)
            raise

    def _passed(self, check: PassedCheck) -> None:
        with self.lock:
            self.passed.append(check)
            full = len(self.passed) >= SWEEP_CHUNK
        if full:
            self.flush()

    def _release(self, connection_id: int) -> None:
        with self.lock:
            self.released.append(connection_id)

    def flush(self) -> None:
        with self.lock:
            passed, self.passed = self.passed, []
            released, self.released = self.released, []
        if passed:
            freshness.record_passed_checks(passed)
        if released:
            set_sweep_claims(released, None)

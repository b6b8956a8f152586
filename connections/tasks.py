"""Celery tasks for connections. Thin: they take ids and call one service."""

import logging
import random

from celery import shared_task
from django.conf import settings
from django.utils.translation import ngettext

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True)
def refresh_connection(self, connection_id: int) -> str:
    """One connection, retried with backoff after a transient failure."""
    from . import attio, services

    try:
        return services.sweep_one(connection_id)
    except attio.AttioError as e:
        # Only transient failures arrive here; permanent ones are already recorded.
        if self.request.retries >= settings.CONNECTION_REFRESH_MAX_RETRIES:
            # Give up for now: the connection stays usable; the next sweep tries again.
            services.release_sweep_claim(connection_id)
            logger.warning(
                "Gave up refreshing connection %s for now (%s); the next sweep tries again",
                connection_id,
                e.message,
            )
            return "gave_up"
        delay = retry_delay(self.request.retries, e.retry_after)
        # Celery's own retry line is left out at INFO (see LOGGING in settings).
        logger.info("Retrying connection %s in %.0f s (%s)", connection_id, delay, e.message)
        raise self.retry(countdown=delay) from None


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than Attio's Retry-After."""
    backoff = min(600.0, 10.0 * 2**retries)
    return max(retry_after or 0.0, backoff) * random.uniform(1.0, 1.5)


@shared_task(acks_late=True)
def sweep_batch(connection_ids: list[int]) -> dict[str, int]:
    """Refresh or validate a batch of claimed connections (sweep_connections sends these)."""
    from . import services

    sweep = services.Sweep(
        concurrency=settings.CONNECTION_SWEEP_CONCURRENCY, on_transient=retry_later
    )
    outcomes = dict(sweep.run(connection_ids))
    summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    logger.info("Swept %s: %s", plural(len(connection_ids), "connection"), summary)
    return outcomes


def retry_later(connection_id: int, error) -> None:
    """A transient failure in a batch: that connection goes on alone, with backoff."""
    from . import services

    try:
        refresh_connection.apply_async(
            (connection_id,), countdown=retry_delay(0, error.retry_after)
        )
    except Exception:  # noqa: BLE001 - the broker is away; the next sweep retries
        logger.warning("Could not queue a retry for connection %s", connection_id, exc_info=True)
        services.release_sweep_claim(connection_id)


@shared_task(acks_late=True)
def sweep_connections() -> int:
    """Claim the due connections and fan them out in batches (beat runs this)."""
    from . import services

    items = services.claim_due_connections()
    batches = services.sweep_batches(items)
    for sent, (offset, connection_ids) in enumerate(batches):
        try:
            sweep_batch.apply_async((connection_ids,), countdown=offset)
        except Exception:
            # The broker went away mid-sweep: unclaim what wasn't sent, so the next
            # sweep picks it up instead of waiting for the claims to lapse.
            services.set_sweep_claims([pk for _, ids in batches[sent:] for pk in ids], None)
            raise
    revocations = services.claim_due_revocations()
    for pending_id in revocations:
        revoke_upstream.delay(pending_id)
    # Owners not yet told that a connection needs reconnecting (the broker may have been
    # down when it happened); notify_needs_reconnect sends at most one email each.
    unnotified = services.unnotified_connections()
    for connection_id in unnotified:
        notify_needs_reconnect.delay(connection_id)
    # Beat runs this every minute: a line only when there is something to do.
    if items or revocations or unnotified:
        logger.info(
            "Sweep: %s due, %s to retry at Attio, %s to send",
            plural(len(items), "connection"),
            plural(len(revocations), "revocation"),
            plural(len(unnotified), "reconnect notice"),
        )
    return len(items)


def plural(count: int, noun: str) -> str:
    return f"{count} {ngettext(noun, noun + 's', count)}"


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_needs_reconnect(connection_id: int) -> None:
    from . import services

    services.notify_needs_reconnect(connection_id)


@shared_task(acks_late=True)
def revoke_upstream(pending_revocation_id: int) -> None:
    from . import services

    services.revoke_upstream(pending_revocation_id)

"""Celery tasks for connections. Thin: they take ids and call the service of their name
(beat's `sweep_connections` calls `sweep.sweep_connections`, as `manage.py
sweep_connections` does). Services are imported inside the tasks because they import this
module to enqueue tasks.
"""

import logging
import random

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True)
def refresh_connection(self, connection_id: int) -> str:
    """One connection, retried with backoff after a transient failure."""
    from . import attio, sweep

    try:
        return sweep.refresh_connection(connection_id)
    except attio.AttioError as e:
        # Only transient failures arrive here; permanent ones are already recorded.
        if self.request.retries >= settings.CONNECTION_REFRESH_MAX_RETRIES:
            # Give up for now: the connection stays usable; the next sweep tries again.
            sweep.release_sweep_claim(connection_id)
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
    from . import sweep

    return dict(sweep.sweep_batch(connection_ids))


@shared_task(acks_late=True)
def sweep_connections() -> int:
    """Claim the due work and fan it out as tasks (beat runs this)."""
    from . import sweep

    return sweep.sweep_connections().connections


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_needs_reconnect(connection_id: int) -> None:
    from . import freshness

    freshness.notify_needs_reconnect(connection_id)


@shared_task(acks_late=True)
def revoke_upstream(pending_revocation_id: int) -> None:
    """Revoke a disconnected token at Attio: queued when a connection is revoked, and
    again by the sweep while Attio keeps failing (with backoff)."""
    from . import services

    services.revoke_upstream(pending_revocation_id)

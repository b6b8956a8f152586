"""Celery tasks for connections. Thin: they take ids and call one service."""

import random

from celery import shared_task
from django.conf import settings


@shared_task(bind=True, acks_late=True)
def refresh_connection(self, connection_id: int) -> str:
    from . import attio, services

    try:
        return services.sweep_one(connection_id)
    except attio.AttioError as e:
        # Only transient failures arrive here; permanent ones are already recorded.
        if self.request.retries >= settings.CONNECTION_REFRESH_MAX_RETRIES:
            # Give up for now: the connection stays usable; the next sweep tries again.
            services.release_sweep_claim(connection_id)
            return "gave_up"
        raise self.retry(countdown=retry_delay(self.request.retries, e.retry_after)) from None


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than Attio's Retry-After."""
    backoff = min(600.0, 10.0 * 2**retries)
    return max(retry_after or 0.0, backoff) * random.uniform(1.0, 1.5)


@shared_task(acks_late=True)
def sweep_connections() -> int:
    """Fan out one refresh_connection task per due connection (beat runs this)."""
    from . import services

    items = services.claim_due_connections()
    for sent, item in enumerate(items):
        try:
            refresh_connection.apply_async((item.connection_id,), countdown=item.offset)
        except Exception:
            # The broker went away mid-sweep: unclaim what wasn't sent, so the next
            # sweep picks it up instead of waiting for the claims to lapse.
            services.set_sweep_claims([i.connection_id for i in items[sent:]], None)
            raise
    for pending_id in services.claim_due_revocations():
        revoke_upstream.delay(pending_id)
    # Owners not yet told that a connection needs reconnecting (the broker may have been
    # down when it happened); notify_needs_reconnect sends at most one email each.
    for connection_id in services.unnotified_connections():
        notify_needs_reconnect.delay(connection_id)
    return len(items)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_needs_reconnect(connection_id: int) -> None:
    from . import services

    services.notify_needs_reconnect(connection_id)


@shared_task(acks_late=True)
def revoke_upstream(pending_revocation_id: int) -> None:
    from . import services

    services.revoke_upstream(pending_revocation_id)

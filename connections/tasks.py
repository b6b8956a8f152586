"""Celery tasks for connections. Thin: they take ids and call one service."""

from celery import shared_task
from django.utils import timezone

from .models import PendingRevocation


@shared_task
def revoke_upstream(pending_revocation_id: int) -> None:
    from . import services

    services.revoke_upstream(pending_revocation_id)


@shared_task
def retry_pending_revocations() -> int:
    """Re-enqueue upstream revocations whose retry time has come (a lost message)."""
    due = PendingRevocation.objects.filter(next_attempt_at__lte=timezone.now())
    ids = list(due.values_list("pk", flat=True)[:500])
    for pk in ids:
        revoke_upstream.delay(pk)
    return len(ids)

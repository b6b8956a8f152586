"""Verbs on Attio connections that the other modules build on: the audit log and
revoking a connection (locally at once, at Attio by a task).

The connect flows are in connect.py, keeping credentials fresh in freshness.py and the
sweep in sweep.py; they import from here, never the other way round.
"""

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import attio, signals, tasks
from .models import AuditEvent, Connection, PendingRevocation

logger = logging.getLogger(__name__)


def record_event(
    kind: str,
    *,
    subject=None,
    actor=None,
    connection: Connection | None = None,
    ip: str | None = None,
    reason: str = "",
    **detail,
) -> AuditEvent:
    """Append one event to the audit log: ids and outcomes, never secrets."""
    if subject is not None:
        subject_id = subject.pk
    else:
        # The owner's id, not the owner: no query for a row we only point at.
        subject_id = connection.owner_id if connection is not None else None
    return AuditEvent.objects.create(
        kind=kind,
        subject_id=subject_id,
        actor=actor,
        connection=connection,
        ip_address=ip,
        workspace_name=connection.workspace_name if connection else "",
        reason=reason,
        detail=detail,
    )


# --- Disconnecting and revoking ----------------------------------------------------


def revoke_connection(
    connection: Connection,
    *,
    by,
    reason: str = "",
    ip: str | None = None,
    as_admin: bool = False,
) -> bool:
    """Destroy a connection's tokens locally at once; a task revokes them at Attio.

    Used by the user's "Disconnect", the admin action and user deactivation. The owner
    revoking their own connection is a disconnect, unless `as_admin` says it was done
    as an admin (an admin revoking a connection of their own in the admin). Returns
    False when the connection was already revoked.
    """
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        if locked.status == Connection.Status.REVOKED:
            return False
        now = timezone.now()
        if locked.method == Connection.Method.OAUTH and locked.access_token_sealed:
            revoke_at_attio(locked.access_token(), connection=locked)
        by_owner = not as_admin and by is not None and by.pk == locked.owner_id
        locked.mark_revoked(at=now, reason=reason, by_owner=by_owner)
        locked.save()
        if by_owner:
            signals.connection_disconnected.send(Connection, connection=locked, by=by, ip=ip)
        record_event(
            AuditEvent.Kind.DISCONNECTED if by_owner else AuditEvent.Kind.REVOKED_BY_ADMIN,
            connection=locked,
            actor=by,
            ip=ip,
            reason=reason,
        )
    connection.refresh_from_db()
    return True


def revoke_at_attio(token: str, *, connection: Connection | None) -> PendingRevocation:
    """Have Attio revoke an OAuth token the portal no longer uses: disconnected, replaced
    by a reconnect, or issued for a reconnect that was refused. Call inside a transaction.

    A sealed copy is kept only until Attio confirms. The task queued for it holds it for
    a claim's length, as a sweep would, so the sweep doesn't send a second one meanwhile;
    if the task is lost, the sweep does. Attio is called from a worker once this commits,
    never inside the caller's request: a slow or unreachable Attio can't hold it up.
    """
    pending = PendingRevocation.objects.create(
        connection=connection,
        next_attempt_at=timezone.now() + settings.CONNECTION_SWEEP_CLAIM_TTL,
    )
    pending.seal_token(token)
    pending.save(update_fields=["token_sealed"])
    transaction.on_commit(partial(queue_revoke_upstream, pending.pk), robust=True)
    return pending


def queue_revoke_upstream(pending_id: int) -> None:
    """Enqueue the revoke at Attio; if the broker is down, the next sweep retries it."""
    try:
        tasks.revoke_upstream.delay(pending_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweep catches up
        logger.warning(
            "Could not queue the revocation of pending revocation %s at Attio; "
            "the sweep will retry",
            pending_id,
            exc_info=True,
        )
        # Due at once, so the next sweep doesn't wait for the task's claim to lapse.
        PendingRevocation.objects.filter(pk=pending_id).update(next_attempt_at=timezone.now())


def revoke_upstream(pending_id: int) -> bool:
    """Try Attio's revoke endpoint for one pending revocation. True when done."""
    with transaction.atomic():
        pending = (
            PendingRevocation.objects.select_for_update(skip_locked=True)
            .filter(pk=pending_id)
            .first()
        )
        if pending is None:
            return True
        token = pending.token()
    try:
        attio.revoke_token(token)
    except attio.AttioError as e:
        return _revoke_failed(pending, e)
    connection = pending.connection
    pending.delete()
    record_event(
        AuditEvent.Kind.UPSTREAM_REVOKED,
        connection=connection,
        subject=connection.owner if connection else None,
    )
    return True


def _revoke_failed(pending: PendingRevocation, error: attio.AttioError) -> bool:
    pending.attempts += 1
    pending.last_error = error.message[:200]
    # A 4xx other than a timeout or rate limit means Attio will never accept this token
    # (typically it is already dead): retrying cannot help.
    refused = error.status is not None and 400 <= error.status < 500
    give_up = pending.attempts >= settings.ATTIO_REVOKE_MAX_ATTEMPTS or (
        refused and error.status not in (408, 429)
    )
    record_event(
        AuditEvent.Kind.UPSTREAM_REVOKE_FAILED,
        connection=pending.connection,
        subject=pending.connection.owner if pending.connection else None,
        status=error.status,
        code=error.code,
        attempts=pending.attempts,
        gave_up=give_up,
    )
    if give_up:
        # Attio refuses the token (it is already dead) or keeps failing; the local
        # copy goes either way.
        pending.delete()
        return True
    delay = min(3600, 30 * 2 ** (pending.attempts - 1))
    pending.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    # Only these fields: the token may have been re-sealed under a new key meanwhile.
    # The sweep picks the row up again when the time comes.
    PendingRevocation.objects.filter(pk=pending.pk).update(
        attempts=pending.attempts,
        last_error=pending.last_error,
        next_attempt_at=pending.next_attempt_at,
    )
    return False


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None

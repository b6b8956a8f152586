"""Keeping one connection's credentials good: refresh, validation, needs-reconnect.

`ensure_fresh` is the locked path (the gateway after a 401, "Check now", a retried sweep
task): it holds the row lock through the Attio call, because a refresh token works once.
`validate_connection` is the one validation path, used under that lock and by the sweep
without it (sweep.py): a check is only a read, so every write it leads to is conditional
on the row being unchanged since the check read it.
"""

import contextlib
import logging
import operator
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial, reduce

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import attio, tasks
from .models import AuditEvent, Connection
from .services import record_event

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    FRESH = "fresh"  # nothing to do, or another caller just did it
    REFRESHED = "refreshed"
    VALIDATED = "validated"
    NEEDS_RECONNECT = "needs_reconnect"
    SKIPPED = "skipped"  # gone, revoked, or already waiting for a reconnect


def ensure_fresh(
    connection_id: int,
    *,
    validate: bool = False,
    seen_version: int | None = None,
    by=None,
    ip: str | None = None,
) -> Outcome:
    """Make a connection's credentials good, with one caller at a time talking to Attio.

    Refreshes a token that expires within the margin (when there is a refresh token),
    otherwise validates with `GET /v2/self` when asked to or when due. `seen_version`
    is the version a caller used when Attio answered 401: if the row has moved on since,
    someone else already refreshed and there is nothing to do. Permanent failures move
    the connection to needs_reconnect; transient ones are recorded and raised as
    AttioError so the caller can retry later. `by` and `ip` (the user and address of a
    check started from a request) go on the audit events.
    """
    try:
        with transaction.atomic():
            # The row lock is held through the Attio call: concurrent callers queue
            # here and, once in, see the winner's result and make no call at all.
            connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
            if connection is None:
                return Outcome.SKIPPED
            if not connection.is_usable:
                # Revoked or waiting for a reconnect since the sweep claimed it.
                return _release(connection, Outcome.SKIPPED)
            if seen_version is not None and connection.version != seen_version:
                return _release(connection, Outcome.FRESH)
            now = timezone.now()
            if _needs_refresh(connection, now, forced=seen_version is not None):
                return _refresh(connection, now, by=by, ip=ip)
            if validate or seen_version is not None or due_for_validation(connection, now):
                return validate_connection(connection, now, by=by, ip=ip)
            return _release(connection, Outcome.FRESH)
    except attio.AttioError as e:
        # Only transient failures get this far (permanent ones were handled inside);
        # leaving the block undid its writes, so the failure is recorded after it.
        transient = e
    except _ResponseLost:
        return _mark_response_lost(connection_id, by=by, ip=ip)
    record_transient_failure(connection_id, transient, by=by, ip=ip)
    raise transient


def check_connection(connection: Connection, *, by=None, ip: str | None = None) -> Connection:
    """ "Check now": validate (or refresh) the connection and return its new state."""
    # A transient failure is recorded on the connection as its last error.
    with contextlib.suppress(attio.AttioError):
        ensure_fresh(connection.pk, validate=True, by=by, ip=ip)
    return Connection.objects.get(pk=connection.pk)


def will_refresh(refresh_token_sealed: str, expires_at, now) -> bool:
    """A refresh token, and an expiry that is unknown or within the margin."""
    if not refresh_token_sealed:
        return False
    return expires_at is None or expires_at <= now + settings.CONNECTION_REFRESH_MARGIN


def due_for_validation(connection: Connection, now) -> bool:
    if connection.last_checked_at is None:
        return True
    if connection.expires_at is not None and connection.expires_at <= now:
        return True
    return connection.last_checked_at <= now - settings.CONNECTION_VALIDATE_INTERVAL


def _needs_refresh(connection: Connection, now, *, forced: bool) -> bool:
    if forced and connection.has_refresh_token:
        return True
    return will_refresh(connection.refresh_token_sealed, connection.expires_at, now)


def _release(connection: Connection, outcome: Outcome) -> Outcome:
    """Release the sweep's claim on a connection that needed nothing (more)."""
    if connection.sweep_claimed_at is not None:
        Connection.objects.filter(pk=connection.pk).update(sweep_claimed_at=None)
    return outcome


# --- Refreshing (under the row lock only) ----------------------------------------------


def _refresh(connection: Connection, now, *, by, ip=None) -> Outcome:
    started_version = connection.version
    try:
        tokens = attio.refresh_access_token(connection.refresh_token())
    except attio.AttioError as e:
        if not e.permanent:
            raise  # out of the locked block, which ensure_fresh records
        return _needs_reconnect(
            connection, code=e.code or "refresh_refused", message=e.message, by=by, ip=ip
        )
    try:
        # No savepoint: a failed write fails the whole locked block, which is rolled back.
        with transaction.atomic(savepoint=False):
            _store_refreshed(connection, tokens, now, started_version)
    except DatabaseError:
        # Attio has rotated the refresh token but the answer could not be saved: the
        # old refresh token is spent, so retrying would only be refused.
        logger.exception("Refresh answer for connection %s could not be saved", connection.pk)
        raise _ResponseLost from None
    record_event(AuditEvent.Kind.REFRESHED, connection=connection, actor=by, ip=ip)
    logger.info("Refreshed Attio connection %s", connection.pk)
    return Outcome.REFRESHED


class _ResponseLost(Exception):
    """A refresh succeeded at Attio but its answer could not be stored."""


def _mark_response_lost(connection_id: int, *, by, ip=None) -> Outcome:
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if connection is None or not connection.is_usable:
            return Outcome.SKIPPED
        record_event(AuditEvent.Kind.REFRESH_RESPONSE_LOST, connection=connection, actor=by, ip=ip)
        return _needs_reconnect(
            connection,
            code="refresh_response_lost",
            message="A token refresh succeeded at Attio but could not be saved.",
            by=by,
            ip=ip,
        )


def _store_refreshed(connection: Connection, tokens: attio.TokenSet, now, started_version):
    refresh_token = tokens.refresh_token or connection.refresh_token()
    expires_at = tokens.expires_at or now + settings.CONNECTION_DEFAULT_TOKEN_LIFETIME
    connection.set_credentials(
        access_token=tokens.access_token,
        refresh_token=refresh_token,
        expires_at=expires_at,
    )
    connection.mark_active(checked_at=now)
    connection.sweep_claimed_at = None
    if tokens.scope:
        connection.scopes = tokens.scope
    _save_if_version(connection, started_version)


def _save_if_version(connection: Connection, started_version: int) -> bool:
    """Write the row only if nobody changed its credentials meanwhile."""
    fields = [
        f.attname
        for f in Connection._meta.concrete_fields
        if f.attname not in ("id", "owner_id", "created_at")
    ]
    connection.updated_at = timezone.now()
    written = Connection.objects.filter(pk=connection.pk, version=started_version).update(
        **{name: getattr(connection, name) for name in fields}
    )
    if not written:
        logger.warning(
            "Discarded a late write to connection %s (version %s moved on)",
            connection.pk,
            started_version,
        )
    return bool(written)


# --- Validating (the one path, with or without the row lock) ------------------------------


@dataclass(frozen=True)
class PassedCheck:
    """Attio accepted a connection's token: what to write, if the row is unchanged."""

    connection_id: int
    version: int  # the credentials the check used
    scopes: str
    checked_at: datetime


def validate_connection(
    connection: Connection, now, *, by=None, ip: str | None = None, record_pass=None
) -> Outcome:
    """Ask Attio (`GET /v2/self`) whether the connection's token still works.

    A pass is handed to `record_pass` (the sweep gathers them and writes a batch at
    once) or else written now; a refusal (401, `active: false`) moves the connection to
    needs_reconnect. Both writes happen only if the connection's credentials and status
    are still what this check read, so a revoke, reconnect or refresh meanwhile wins. A
    transient failure is raised as AttioError for the caller to record: inside
    ensure_fresh's locked block, a record made here would be rolled back with it.
    """
    try:
        identity = attio.get_self(connection.access_token())
    except attio.AttioError as e:
        if not e.permanent:
            raise
        return _refuse_checked(
            connection.pk,
            connection.version,
            code=e.code or "unauthorized",
            message=e.message,
            by=by,
            ip=ip,
        )
    if not identity.active:
        return _refuse_checked(
            connection.pk,
            connection.version,
            code="inactive",
            message="Attio says the token is no longer active.",
            by=by,
            ip=ip,
        )
    passed = PassedCheck(
        connection_id=connection.pk,
        version=connection.version,
        scopes=identity.scope or connection.scopes,
        checked_at=now,
    )
    if record_pass is None:
        record_passed_checks([passed])
    else:
        record_pass(passed)
    if by is not None:
        record_event(AuditEvent.Kind.CHECKED, connection=connection, actor=by, ip=ip)
    return Outcome.VALIDATED


def record_passed_checks(passed: list[PassedCheck]) -> None:
    """Mark connections checked, each only if nobody changed its credentials or status
    since its check; the claim on every one of them is released either way."""
    checked_at = min(check.checked_at for check in passed)
    by_scopes: dict[str, list[Q]] = defaultdict(list)
    for check in passed:
        by_scopes[check.scopes].append(Q(pk=check.connection_id, version=check.version))
    written = 0
    for scopes, rows in by_scopes.items():
        written += Connection.objects.filter(
            reduce(operator.or_, rows), status=Connection.Status.ACTIVE
        ).update(
            last_checked_at=checked_at,
            last_error_code="",
            last_error_message="",
            scopes=scopes,
            sweep_claimed_at=None,
            updated_at=timezone.now(),
        )
    if written < len(passed):
        logger.warning(
            "Discarded %s check result(s): the connections changed meanwhile",
            len(passed) - written,
        )
        # A batch is at most a few hundred rows, well within the database's limits.
        Connection.objects.filter(pk__in=[check.connection_id for check in passed]).update(
            sweep_claimed_at=None
        )


def _refuse_checked(
    connection_id: int, seen_version: int, *, code: str, message: str, by, ip: str | None
) -> Outcome:
    """Attio refused the token a check used: the connection needs reconnecting, unless it
    changed meanwhile (a refresh, a revoke, a reconnect)."""
    # Under ensure_fresh's lock this takes the lock it already holds and finds the row as
    # it was; without it (the sweep), this is where the row is locked.
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if connection is None:
            return Outcome.SKIPPED
        if not connection.is_usable or connection.version != seen_version:
            return _release(connection, Outcome.SKIPPED)
        return _needs_reconnect(connection, code=code, message=message, by=by, ip=ip)


# --- Failures ---------------------------------------------------------------------------


def _needs_reconnect(connection: Connection, *, code: str, message: str, by, ip=None) -> Outcome:
    started_version = connection.version
    connection.mark_needs_reconnect(code=code, message=message)
    connection.sweep_claimed_at = None
    if _save_if_version(connection, started_version):
        record_event(
            AuditEvent.Kind.NEEDS_RECONNECT, connection=connection, actor=by, ip=ip, code=code
        )
        logger.warning("Attio connection %s needs reconnecting (%s)", connection.pk, code)
        transaction.on_commit(partial(queue_notification, connection.pk), robust=True)
    return Outcome.NEEDS_RECONNECT


def record_transient_failure(connection_id: int, error: attio.AttioError, *, by, ip=None) -> None:
    """Note a timeout, 5xx or 429 on the connection; the credentials stay as they are."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if connection is None:
            return
        first_failure = not connection.last_error_code
        Connection.objects.filter(pk=connection_id).update(
            last_error_code=error.code[:64] or f"http_{error.status}",
            last_error_message=error.message[:500],
        )
        # One event per streak of failures, not one per retry.
        if first_failure or by is not None:
            record_event(
                AuditEvent.Kind.CHECK_FAILED,
                connection=connection,
                actor=by,
                ip=ip,
                status=error.status,
                code=error.code,
            )


# --- Telling the owner ------------------------------------------------------------------


def queue_notification(connection_id: int) -> None:
    """Enqueue the owner's email; if the broker is down, the sweep enqueues it later."""
    try:
        tasks.notify_needs_reconnect.delay(connection_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweep catches up
        logger.warning(
            "Could not queue the reconnect notice for connection %s; the sweep will retry",
            connection_id,
            exc_info=True,
        )


def notify_needs_reconnect(connection_id: int) -> bool:
    """Email the owner once per incident that a connection needs reconnecting."""
    with transaction.atomic():
        connection = (
            Connection.objects.select_for_update()
            .select_related("owner")
            .filter(pk=connection_id)
            .first()
        )
        if (
            connection is None
            or connection.status != Connection.Status.NEEDS_RECONNECT
            or connection.notified_at is not None
        ):
            return False
        if connection.owner.email:
            context = {
                "connection": connection,
                "dashboard_url": settings.PORTAL_BASE_URL + reverse("dashboard"),
            }
            subject = render_to_string("connections/email/needs_reconnect_subject.txt", context)
            send_mail(
                # The workspace name is Attio's and may hold a line break, which a header
                # cannot (Django refuses to send it): every run of whitespace is one space.
                " ".join(subject.split()),
                render_to_string("connections/email/needs_reconnect.txt", context),
                None,
                [connection.owner.email],
            )
        Connection.objects.filter(pk=connection_id).update(notified_at=timezone.now())
        return True

"""Verbs on Attio connections, shared by views, tasks, admin actions and the gateway."""

import contextlib
import logging
import operator
import queue
import secrets
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial, reduce

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import attio, tasks
from .models import AuditEvent, Connection, PendingRevocation

logger = logging.getLogger(__name__)

OAUTH_FLOWS_SESSION_KEY = "attio_oauth_flows"
# A user may have a few flows open in several tabs; older ones are dropped.
MAX_OPEN_FLOWS = 5


class ConnectError(Exception):
    """A connect or reconnect attempt failed. The message is written for the user."""


def redirect_uri() -> str:
    return settings.PORTAL_BASE_URL + reverse("connections:callback")


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


# --- Connecting --------------------------------------------------------------------


def start_oauth(request, *, reconnect: Connection | None = None) -> str:
    """Begin an OAuth flow for the signed-in user; returns Attio's authorize URL."""
    state = secrets.token_urlsafe(32)
    verifier = attio.new_pkce_verifier()
    flows = _open_flows(request)
    flows[state] = {
        "verifier": verifier,
        "started": time.time(),
        "reconnect": reconnect.pk if reconnect else None,
    }
    newest = sorted(flows.items(), key=lambda item: item[1]["started"])[-MAX_OPEN_FLOWS:]
    request.session[OAUTH_FLOWS_SESSION_KEY] = dict(newest)
    return attio.authorization_url(state=state, code_verifier=verifier, redirect_uri=redirect_uri())


def _open_flows(request) -> dict:
    max_age = settings.ATTIO_OAUTH_STATE_MAX_AGE
    flows = request.session.get(OAUTH_FLOWS_SESSION_KEY, {})
    return {s: f for s, f in flows.items() if time.time() - f["started"] <= max_age}


def finish_oauth(request, params) -> tuple[Connection, bool]:
    """Complete the flow from Attio's redirect. Returns (connection, created)."""
    state = params.get("state") or ""
    flows = request.session.get(OAUTH_FLOWS_SESSION_KEY, {})
    # Pop first: a state works once, whatever happens next.
    flow = flows.pop(state, None) if state else None
    request.session[OAUTH_FLOWS_SESSION_KEY] = flows
    if flow is None:
        raise ConnectError(
            "This sign-in answer from Attio doesn't belong to a connect attempt in "
            "this browser session (it may have been used already). Nothing was "
            "changed; start again from the dashboard."
        )
    if time.time() - flow["started"] > settings.ATTIO_OAUTH_STATE_MAX_AGE:
        raise ConnectError(
            "The connect attempt took longer than 10 minutes and expired. "
            "Nothing was changed; start again from the dashboard."
        )
    if params.get("error"):
        if params["error"] == "access_denied":
            raise ConnectError("You declined access on Attio's page, so nothing was connected.")
        raise ConnectError(
            f"Attio did not grant access ({params['error'][:64]}). Nothing was changed."
        )
    issuer = params.get("iss")
    if issuer is not None and issuer != settings.ATTIO_OAUTH_ISSUER:
        raise ConnectError(
            "The answer did not come from Attio's sign-in server. Nothing was changed."
        )
    code = params.get("code")
    if not code:
        raise ConnectError("Attio's answer carried no authorization code. Try again.")

    reconnect = None
    if flow["reconnect"]:
        reconnect = (
            Connection.objects.reconnectable()
            .filter(pk=flow["reconnect"], owner=request.user)
            .first()
        )
        if reconnect is None:
            raise ConnectError(
                "The connection you chose to reconnect no longer exists. "
                "Connect the workspace again from the dashboard."
            )
    try:
        tokens = attio.exchange_code(
            code=code, code_verifier=flow["verifier"], redirect_uri=redirect_uri()
        )
    except attio.AttioError as e:
        record_event(
            AuditEvent.Kind.CONNECT_FAILED,
            subject=request.user,
            actor=request.user,
            connection=reconnect,
            ip=client_ip(request),
            status=e.status,
            code=e.code,
        )
        raise ConnectError(
            f"Attio did not accept the sign-in: {e.message}. Nothing was changed; "
            "try connecting again."
        ) from None
    return _store_connection(
        request.user,
        method=Connection.Method.OAUTH,
        tokens=tokens,
        reconnect=reconnect,
        ip=client_ip(request),
    )


def connect_with_api_key(user, api_key: str, *, ip: str | None = None):
    """Connect with an Attio workspace API key, confirmed with Attio first."""
    return _store_connection(
        user,
        method=Connection.Method.API_KEY,
        tokens=attio.TokenSet(access_token=api_key),
        reconnect=None,
        ip=ip,
    )


def _identify(token: str) -> attio.Identity:
    try:
        identity = attio.get_self(token)
    except attio.AttioError as e:
        if e.permanent:
            raise ConnectError("Attio did not accept these credentials.") from None
        raise ConnectError(
            f"Could not confirm the connection with Attio ({e.message}). "
            "Nothing was saved; try again in a moment."
        ) from None
    if not identity.active:
        raise ConnectError("Attio says these credentials are not active.")
    return identity


def _store_connection(
    user,
    *,
    method: str,
    tokens: attio.TokenSet,
    reconnect: Connection | None,
    ip: str | None,
) -> tuple[Connection, bool]:
    identity = _identify(tokens.access_token)
    try:
        with transaction.atomic():
            return _save_credentials(
                user,
                method=method,
                tokens=tokens,
                identity=identity,
                reconnect=reconnect,
                ip=ip,
            )
    except IntegrityError:
        # Another request connected the same workspace a moment ago.
        raise ConnectError(
            "This workspace was just connected from another tab. Reload the dashboard."
        ) from None


def _save_credentials(user, *, method, tokens, identity, reconnect, ip):
    now = timezone.now()
    if reconnect is not None:
        connection = Connection.objects.select_for_update().get(pk=reconnect.pk)
        if connection.status == Connection.Status.REVOKED and not connection.can_be_restored:
            raise ConnectError("That connection was disconnected meanwhile. Connect again.")
        if connection.workspace_id != identity.workspace_id:
            # Workspace pinning: the old credentials stay exactly as they were.
            raise ConnectError(
                f"You chose to reconnect “{connection.workspace_name}”, but Attio "
                f"signed you in to “{identity.workspace_name}”. Nothing was changed; "
                "pick the right workspace on Attio's page and try again."
            )
    else:
        mine = Connection.objects.select_for_update().filter(
            owner=user, workspace_id=identity.workspace_id
        )
        # The live connection to this workspace, or else one an admin revoked, which
        # comes back in place with its API keys.
        connection = mine.live().first() or mine.restorable().order_by("-revoked_at").first()
    if (
        connection is not None
        and connection.status == Connection.Status.REVOKED
        and Connection.objects.live()
        .filter(owner=user, workspace_id=identity.workspace_id)
        .exclude(pk=connection.pk)
        .exists()
    ):
        raise ConnectError(
            "This workspace is already connected again; use that connection instead."
        )
    created = connection is None
    if created:
        connection = Connection.objects.create(
            owner=user, method=method, workspace_id=identity.workspace_id
        )
    connection.method = method
    connection.workspace_name = identity.workspace_name
    connection.workspace_slug = identity.workspace_slug
    connection.attio_member_id = identity.member_id
    connection.scopes = identity.scope or tokens.scope
    expires_at = tokens.expires_at or identity.expires_at
    if expires_at is None and tokens.refresh_token:
        # A refreshable token with no stated lifetime still gets refreshed on schedule.
        expires_at = now + settings.CONNECTION_DEFAULT_TOKEN_LIFETIME
    connection.set_credentials(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=expires_at,
    )
    connection.mark_active(checked_at=now)
    connection.save()
    record_event(
        AuditEvent.Kind.CONNECTED if created else AuditEvent.Kind.RECONNECTED,
        connection=connection,
        actor=user,
        ip=ip,
        method=method,
        workspace_id=identity.workspace_id,
    )
    logger.info(
        "Attio connection %s %s for user %s",
        connection.pk,
        "created" if created else "updated",
        user.pk,
    )
    return connection, created


# --- Keeping connections fresh -------------------------------------------------------


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
    transient = None
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
            if validate or seen_version is not None or _due_for_validation(connection, now):
                return _validate(connection, now, by=by, ip=ip)
            return _release(connection, Outcome.FRESH)
    except _Transient as e:
        transient = e.error
    except _ResponseLost:
        return _mark_response_lost(connection_id, by=by, ip=ip)
    _record_transient_failure(connection_id, transient, by=by, ip=ip)
    raise transient


class _Transient(Exception):
    """Carries a transient AttioError out of the locked block, undoing its writes."""

    def __init__(self, error: attio.AttioError):
        self.error = error


class WorkspacePacer:
    """Keeps this process's calls for each workspace within the sweep's share of Attio's
    budget: each call takes the next free slot at send time, so a backlog can't burst."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_free: dict[tuple[str, bool], float] = defaultdict(float)

    def wait(self, workspace_id: str, *, write: bool) -> None:
        rate = settings.SWEEP_WRITES_PER_SECOND if write else settings.SWEEP_READS_PER_SECOND
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_free[(workspace_id, write)])
            self.next_free[(workspace_id, write)] = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)


pacer = WorkspacePacer()


def _needs_refresh(connection: Connection, now, *, forced: bool) -> bool:
    if forced and connection.has_refresh_token:
        return True
    return will_refresh(connection.refresh_token_sealed, connection.expires_at, now)


def will_refresh(refresh_token_sealed: str, expires_at, now) -> bool:
    """A refresh token, and an expiry that is unknown or within the margin."""
    if not refresh_token_sealed:
        return False
    return expires_at is None or expires_at <= now + settings.CONNECTION_REFRESH_MARGIN


def sweep_one(connection_id: int) -> Outcome:
    """ensure_fresh for the sweep, after waiting for the workspace's next free slot.

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
    return ensure_fresh(connection_id)


def _due_for_validation(connection: Connection, now) -> bool:
    if connection.last_checked_at is None:
        return True
    if connection.expires_at is not None and connection.expires_at <= now:
        return True
    return connection.last_checked_at <= now - settings.CONNECTION_VALIDATE_INTERVAL


def _release(connection: Connection, outcome: Outcome) -> Outcome:
    if connection.sweep_claimed_at is not None:
        Connection.objects.filter(pk=connection.pk).update(sweep_claimed_at=None)
    return outcome


def _refresh(connection: Connection, now, *, by, ip=None) -> Outcome:
    started_version = connection.version
    try:
        tokens = attio.refresh_access_token(connection.refresh_token())
    except attio.AttioError as e:
        if not e.permanent:
            raise _Transient(e) from None
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


class _Refused(Exception):
    """Attio refused a token for good (401, or `active: false`)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message


def _identify_or_refuse(token: str) -> attio.Identity:
    """`GET /v2/self` for a check: _Refused when the token is dead, transient AttioError
    as it comes."""
    try:
        identity = attio.get_self(token)
    except attio.AttioError as e:
        if not e.permanent:
            raise
        raise _Refused(e.code or "unauthorized", e.message) from None
    if not identity.active:
        raise _Refused("inactive", "Attio says the token is no longer active.")
    return identity


def _validate(connection: Connection, now, *, by, ip=None) -> Outcome:
    try:
        identity = _identify_or_refuse(connection.access_token())
    except attio.AttioError as e:
        raise _Transient(e) from None
    except _Refused as e:
        return _needs_reconnect(connection, code=e.code, message=e.message, by=by, ip=ip)
    started_version = connection.version
    connection.mark_active(checked_at=now)
    connection.sweep_claimed_at = None
    connection.scopes = identity.scope or connection.scopes
    _save_if_version(connection, started_version)
    if by is not None:
        record_event(AuditEvent.Kind.CHECKED, connection=connection, actor=by, ip=ip)
    return Outcome.VALIDATED


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


def _record_transient_failure(connection_id: int, error: attio.AttioError, *, by, ip=None) -> None:
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


def check_connection(connection: Connection, *, by=None, ip: str | None = None) -> Connection:
    """ "Check now": validate (or refresh) the connection and return its new state."""
    # A transient failure is recorded on the connection as its last error.
    with contextlib.suppress(attio.AttioError):
        ensure_fresh(connection.pk, validate=True, by=by, ip=ip)
    return Connection.objects.get(pk=connection.pk)


# --- The sweep ----------------------------------------------------------------------

# Connections per Celery sweep task. A batch of refreshes of one workspace takes
# SWEEP_BATCH_SIZE / SWEEP_WRITES_PER_SECOND seconds, well within the task time limit.
SWEEP_BATCH_SIZE = 200
# Claimed rows are read from the database this many at a time, just before their turn,
# and passed checks are written this many at a time (or every SWEEP_FLUSH_SECONDS).
SWEEP_CHUNK = 100
SWEEP_FLUSH_SECONDS = 0.5


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
    reads = settings.SWEEP_READS_PER_SECOND
    writes = settings.SWEEP_WRITES_PER_SECOND
    next_free: dict[tuple[str, bool], float] = defaultdict(float)
    items = []
    for pk, workspace, refresh in rows:
        key = (workspace, refresh)
        offset = next_free[key]
        next_free[key] = offset + 1.0 / (writes if refresh else reads)
        items.append(SweepItem(pk, workspace, refresh, offset))
    items.sort(key=lambda item: (item.offset, item.connection_id))
    return items


def release_sweep_claim(connection_id: int) -> None:
    Connection.objects.filter(pk=connection_id).update(sweep_claimed_at=None)


def sweep_batches(items: list[SweepItem]) -> list[tuple[float, list[int]]]:
    """The plan cut into consecutive batches of SWEEP_BATCH_SIZE: (start offset, ids)."""
    return [
        (batch[0].offset, [item.connection_id for item in batch])
        for batch in _chunks(items, SWEEP_BATCH_SIZE)
    ]


class Sweep:
    """One pass over claimed connections, with `concurrency` Attio calls at a time.

    Refreshes go through ensure_fresh, under the row lock: a refresh token works once.
    Validations are only reads, so they run without a lock, and their results are
    written together, each row only if its credentials and status are still what the
    check saw. A transient failure is recorded on the connection and handed to
    `on_transient(connection_id, error)`, which keeps or releases the claim;
    `on_done(outcome)` is called after each connection, one call at a time.
    """

    def __init__(self, *, concurrency: int, on_transient, on_done=None) -> None:
        self.concurrency = max(1, concurrency)
        self.on_transient = on_transient
        self.on_done = on_done
        self.outcomes: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.passed: list[tuple[int, int, str, object]] = []
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
            return ensure_fresh(connection_id)
        if not _due_for_validation(connection, now):
            self._release(connection_id)
            return Outcome.FRESH
        pacer.wait(connection.workspace_id, write=False)
        try:
            identity = _identify_or_refuse(connection.access_token())
        except _Refused as e:
            return _refuse_checked(connection_id, connection.version, e)
        except attio.AttioError as e:
            _record_transient_failure(connection_id, e, by=None)
            raise
        scopes = identity.scope or connection.scopes
        with self.lock:
            self.passed.append((connection_id, connection.version, scopes, now))
            full = len(self.passed) >= SWEEP_CHUNK
        if full:
            self.flush()
        return Outcome.VALIDATED

    def _release(self, connection_id: int) -> None:
        with self.lock:
            self.released.append(connection_id)

    def flush(self) -> None:
        with self.lock:
            passed, self.passed = self.passed, []
            released, self.released = self.released, []
        if passed:
            _record_passed_checks(passed)
        if released:
            set_sweep_claims(released, None)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record_passed_checks(passed: list[tuple[int, int, str, object]]) -> None:
    """Mark connections checked, each only if nobody changed its credentials or status
    since its check; the claim on every one of them is released either way."""
    checked_at = min(at for _, _, _, at in passed)
    by_scopes: dict[str, list[Q]] = defaultdict(list)
    for pk, version, scopes, _ in passed:
        by_scopes[scopes].append(Q(pk=pk, version=version))
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
        set_sweep_claims([pk for pk, _, _, _ in passed], None)


def _refuse_checked(connection_id: int, seen_version: int, refusal: _Refused) -> Outcome:
    """Attio refused the token a lockless check used: the connection needs reconnecting,
    unless it changed meanwhile (a refresh, a revoke, a reconnect)."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if connection is None:
            return Outcome.SKIPPED
        if not connection.is_usable or connection.version != seen_version:
            return _release(connection, Outcome.SKIPPED)
        return _needs_reconnect(connection, code=refusal.code, message=refusal.message, by=None)


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


def unnotified_connections() -> list[int]:
    """Connections that need reconnecting whose owner hasn't been told yet."""
    return list(
        Connection.objects.filter(
            status=Connection.Status.NEEDS_RECONNECT, notified_at__isnull=True
        ).values_list("pk", flat=True)[:500]
    )


def set_sweep_claims(connection_ids: list[int], at) -> None:
    """Claim (a time) or release (None) connections, in batches the database accepts."""
    for chunk in _chunks(connection_ids, 500):
        Connection.objects.filter(pk__in=chunk).update(sweep_claimed_at=at)


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
            send_mail(
                render_to_string("connections/email/needs_reconnect_subject.txt", context).strip(),
                render_to_string("connections/email/needs_reconnect.txt", context),
                None,
                [connection.owner.email],
            )
        Connection.objects.filter(pk=connection_id).update(notified_at=timezone.now())
        return True


# --- Disconnecting and revoking ----------------------------------------------------


def revoke_connection(
    connection: Connection,
    *,
    by,
    reason: str = "",
    ip: str | None = None,
    as_admin: bool = False,
) -> bool:
    """Destroy a connection's tokens locally, then revoke them at Attio.

    Used by the user's "Disconnect", the admin action and user deactivation. The owner
    revoking their own connection is a disconnect, unless `as_admin` says it was done
    as an admin (an admin revoking a connection of their own in the admin). Returns
    False when the connection was already revoked.
    """
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        if locked.status == Connection.Status.REVOKED:
            return False
        pending = None
        if locked.method == Connection.Method.OAUTH and locked.access_token_sealed:
            # Keep a sealed copy only until Attio confirms the revocation.
            pending = PendingRevocation.objects.create(connection=locked)
            pending.seal_token(locked.access_token())
            pending.save(update_fields=["token_sealed"])
        by_owner = not as_admin and by is not None and by.pk == locked.owner_id
        locked.mark_revoked(at=timezone.now(), reason=reason, by_owner=by_owner)
        locked.save()
        if by_owner:
            # The owner cut this workspace off: its keys go too, so connecting the
            # workspace again later doesn't quietly bring them back.
            from mcp_gateway.services import revoke_keys

            revoke_keys(connection=locked, by=by, reason="connection disconnected", ip=ip)
        record_event(
            AuditEvent.Kind.DISCONNECTED if by_owner else AuditEvent.Kind.REVOKED_BY_ADMIN,
            connection=locked,
            actor=by,
            ip=ip,
            reason=reason,
        )
    connection.refresh_from_db()
    if pending is not None:
        revoke_upstream(pending.pk)
    return True


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


def deactivate_user(user, *, by, ip: str | None = None) -> int:
    """Deactivate a portal user: revoke their API keys and connections, end their sessions."""
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        record_event(AuditEvent.Kind.USER_DEACTIVATED, subject=user, actor=by, ip=ip)
        end_sessions(user)
    # The gateway builds on connections, so it is imported here rather than at the top.
    from mcp_gateway.services import revoke_keys

    revoke_keys(owner=user, by=by, reason="user deactivated", ip=ip)
    # Deactivating is an admin's act, even when an admin deactivates their own account.
    revoked = sum(
        revoke_connection(c, by=by, reason="user deactivated", ip=ip, as_admin=True)
        for c in Connection.objects.live().filter(owner=user)
    )
    return revoked


def end_sessions(user) -> int:
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None

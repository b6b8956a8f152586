"""Verbs on Attio connections, shared by views, tasks, admin actions and the gateway."""

import logging
import secrets
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
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
    return AuditEvent.objects.create(
        kind=kind,
        subject=subject if subject is not None else getattr(connection, "owner", None),
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
    newest = sorted(flows.items(), key=lambda item: item[1]["started"])[
        -MAX_OPEN_FLOWS:
    ]
    request.session[OAUTH_FLOWS_SESSION_KEY] = dict(newest)
    return attio.authorization_url(
        state=state, code_verifier=verifier, redirect_uri=redirect_uri()
    )


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
            raise ConnectError(
                "You declined access on Attio's page, so nothing was connected."
            )
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
            Connection.objects.live()
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
        if connection.status == Connection.Status.REVOKED:
            raise ConnectError("That connection was revoked meanwhile. Connect again.")
        if connection.workspace_id != identity.workspace_id:
            # Workspace pinning: the old credentials stay exactly as they were.
            raise ConnectError(
                f"You chose to reconnect “{connection.workspace_name}”, but Attio "
                f"signed you in to “{identity.workspace_name}”. Nothing was changed; "
                "pick the right workspace on Attio's page and try again."
            )
    else:
        connection = (
            Connection.objects.select_for_update()
            .live()
            .filter(owner=user, workspace_id=identity.workspace_id)
            .first()
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
    connection.set_credentials(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at or identity.expires_at,
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


# --- Checking ----------------------------------------------------------------------


def check_connection(connection: Connection, *, by=None) -> Connection:
    """Ask Attio whether the connection's token still works, and record the answer."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        if not connection.is_usable and connection.status != Connection.Status.ACTIVE:
            return connection
        token = connection.access_token()
    try:
        identity = attio.get_self(token)
    except attio.AttioError as e:
        if e.permanent:
            return _mark_needs_reconnect(
                connection, code=e.code or "unauthorized", message=e.message, by=by
            )
        with transaction.atomic():
            Connection.objects.filter(pk=connection.pk).update(
                last_error_code=e.code[:64], last_error_message=e.message[:500]
            )
        record_event(
            AuditEvent.Kind.CHECK_FAILED,
            connection=connection,
            actor=by,
            status=e.status,
            code=e.code,
        )
        connection.refresh_from_db()
        return connection
    if not identity.active:
        return _mark_needs_reconnect(
            connection,
            code="inactive",
            message="Attio says the token is no longer active.",
            by=by,
        )
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        if locked.status == Connection.Status.ACTIVE:
            locked.mark_active(checked_at=timezone.now())
            locked.scopes = identity.scope or locked.scopes
            locked.save()
    record_event(AuditEvent.Kind.CHECKED, connection=locked, actor=by)
    return locked


def _mark_needs_reconnect(connection, *, code: str, message: str, by=None):
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        # A connection revoked meanwhile stays revoked.
        if locked.status != Connection.Status.ACTIVE:
            return locked
        locked.mark_needs_reconnect(code=code, message=message)
        locked.save()
        record_event(
            AuditEvent.Kind.NEEDS_RECONNECT,
            connection=locked,
            actor=by,
            code=code,
        )
    return locked


# --- Disconnecting and revoking ----------------------------------------------------


def revoke_connection(
    connection: Connection, *, by, reason: str = "", ip: str | None = None
) -> bool:
    """Destroy a connection's tokens locally, then revoke them at Attio.

    Used by the user's "Disconnect", the admin action and user deactivation. Returns
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
        locked.mark_revoked(at=timezone.now())
        locked.save()
        by_owner = by is not None and by.pk == locked.owner_id
        record_event(
            AuditEvent.Kind.DISCONNECTED
            if by_owner
            else AuditEvent.Kind.REVOKED_BY_ADMIN,
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
    give_up = pending.attempts >= settings.ATTIO_REVOKE_MAX_ATTEMPTS or (
        error.permanent and error.status in (400, 401)
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
    pending.next_attempt_at = timezone.now() + timezone.timedelta(seconds=delay)
    pending.save()
    tasks.revoke_upstream.apply_async((pending.pk,), countdown=delay)
    return False


def deactivate_user(user, *, by, ip: str | None = None) -> int:
    """Deactivate a portal user: revoke their connections, end their sessions."""
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        record_event(AuditEvent.Kind.USER_DEACTIVATED, subject=user, actor=by, ip=ip)
        end_sessions(user)
    revoked = sum(
        revoke_connection(c, by=by, reason="user deactivated", ip=ip)
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

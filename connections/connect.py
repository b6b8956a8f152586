"""Connecting an Attio workspace: the OAuth flow and the workspace API-key flow.

Both end in one place, `_store_connection`: the credentials are confirmed with Attio
(`GET /v2/self`) before anything is saved, and a reconnect keeps its workspace.
"""

import logging
import secrets
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from . import attio
from .crypto import DecryptionError
from .models import AuditEvent, Connection
from .services import client_ip, record_event, revoke_at_attio

logger = logging.getLogger(__name__)

OAUTH_FLOWS_SESSION_KEY = "attio_oauth_flows"
# A user may have a few flows open in several tabs; older ones are dropped.
MAX_OPEN_FLOWS = 5


class ConnectError(Exception):
    """A connect or reconnect attempt failed. The message is written for the user."""


class WrongWorkspace(ConnectError):
    """A reconnect signed in to another workspace than the one being reconnected."""


def redirect_uri() -> str:
    return settings.PORTAL_BASE_URL + reverse("connections:callback")


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
    except WrongWorkspace as e:
        # Attio issued a token for the other workspace: it is not kept, so it is revoked
        # (an OAuth token only: an Attio API key is the user's, managed in Attio).
        if method == Connection.Method.OAUTH:
            with transaction.atomic():
                revoke_at_attio(tokens.access_token, connection=None)
        raise ConnectError(str(e)) from None
    except IntegrityError:
        # Another request connected the same workspace a moment ago.
        raise ConnectError(
            "This workspace was just connected from another tab. Reload the dashboard."
        ) from None


def replaced_token(connection: Connection) -> str | None:
    """The OAuth access token a reconnect replaces, to revoke at Attio; None if there is
    none, or it can't be opened (its key retired): a reconnect is how that gets repaired,
    so it must not fail for it."""
    if not connection.access_token_sealed:
        return None
    try:
        return connection.access_token()
    except DecryptionError:
        logger.warning(
            "Connection %s: the token a reconnect replaces can't be decrypted, so it is "
            "not revoked at Attio",
            connection.pk,
        )
        return None


def _save_credentials(user, *, method, tokens, identity, reconnect, ip):
    now = timezone.now()
    if reconnect is not None:
        connection = Connection.objects.select_for_update().get(pk=reconnect.pk)
        if connection.status == Connection.Status.REVOKED and not connection.can_be_restored:
            raise ConnectError("That connection was disconnected meanwhile. Connect again.")
        if connection.workspace_id != identity.workspace_id:
            # Workspace pinning: the old credentials stay exactly as they were.
            raise WrongWorkspace(
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
    replaced = None
    if not created and connection.method == Connection.Method.OAUTH:
        replaced = replaced_token(connection)
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
    if replaced is not None and replaced != tokens.access_token:
        # A user who reconnects because they fear a leak must see the old token die,
        # not merely be forgotten here: Attio revokes it, as on a disconnect. (Never an
        # Attio API key: that one is the user's to manage in Attio.)
        revoke_at_attio(replaced, connection=connection)
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

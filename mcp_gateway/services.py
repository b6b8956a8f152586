"""Verbs on portal API keys and connected apps (OAuth clients a user authorized), shared
by views, the admin, management commands and the OAuth server."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from oauth2_provider.models import Application, RefreshToken

from connections.models import Connection

from .models import ApiKey, ApiKeyEvent, ConnectedApp, ToolCall, ToolProfile


class ApiKeyError(Exception):
    """A key can't be created as asked. The message is written for the user."""


class AlreadyCreated(ApiKeyError):
    """The same creation form was submitted twice (a reload): the key exists already."""


def record_key_event(
    kind: str, key: ApiKey, *, actor, ip: str | None = None, reason: str = "", **detail
) -> ApiKeyEvent:
    """Append one event to the API keys' audit log: ids and outcomes, never secrets."""
    return ApiKeyEvent.objects.create(
        kind=kind,
        api_key=key,
        subject_id=key.owner_id,
        actor=actor,
        connection=key.connection,
        ip_address=ip,
        workspace_name=key.connection.workspace_name,
        reason=reason,
        detail={"api_key": key.public_id, **detail},
    )


def create_api_key(
    owner,
    *,
    connection: Connection,
    name: str,
    read_only: bool = False,
    tool_profile: str = ToolProfile.FULL,
    expires_at: datetime | None = None,
    ip: str | None = None,
    form_nonce: str | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key for one of the owner's connections. Returns (row, plaintext)."""
    if connection.owner_id != owner.pk or connection.status == Connection.Status.REVOKED:
        raise ApiKeyError("Choose one of your connected Attio workspaces.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry date must be in the future.")
    already = "That key was already created, and its secret was shown only once."
    if form_nonce and ApiKey.objects.filter(form_nonce=form_nonce).exists():
        raise AlreadyCreated(already)
    try:
        with transaction.atomic():
            key, plaintext = _issue(
                owner, connection, name, read_only, tool_profile, expires_at, form_nonce, ip
            )
    except IntegrityError:
        # The same form, submitted twice at once: the other request made the key.
        raise AlreadyCreated(already) from None
    return key, plaintext


def _issue(owner, connection, name, read_only, tool_profile, expires_at, form_nonce, ip):
    with transaction.atomic():
        key, plaintext = ApiKey.objects.issue(
            owner,
            connection=connection,
            name=name,
            read_only=read_only,
            tool_profile=tool_profile,
            expires_at=expires_at,
            form_nonce=form_nonce,
        )
        record_key_event(ApiKeyEvent.Kind.CREATED, key, actor=owner, ip=ip, read_only=read_only)
    return key, plaintext


def revoke_api_key(key: ApiKey, *, by, reason: str = "", ip: str | None = None) -> bool:
    """Revoke a key at once for every worker. False if it was already revoked."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=reason[:500]
        )
        if not revoked:
            return False
        record_key_event(ApiKeyEvent.Kind.REVOKED, key, actor=by, ip=ip, reason=reason)
    key.refresh_from_db()
    return True


def revoke_keys(*, by, reason: str, ip: str | None = None, **which) -> int:
    """Revoke the live keys matching `which` (owner=..., connection=...)."""
    keys = ApiKey.objects.filter(revoked_at__isnull=True, **which).select_related(
        "owner", "connection"
    )
    return sum(revoke_api_key(k, by=by, reason=reason, ip=ip) for k in keys)


def revoke_keys_of_disconnected_connection(sender, *, connection, by, ip, **kwargs) -> None:
    """connections' `connection_disconnected`: the owner cut the workspace off, so its
    keys and connected apps go for good (connecting it again doesn't bring them back)."""
    revoke_keys(connection=connection, by=by, reason="connection disconnected", ip=ip)
    revoke_connected_apps(connection=connection, by=by, reason="connection disconnected", ip=ip)


def record_app_event(
    kind: str, app: ConnectedApp, *, actor, ip: str | None = None, reason: str = ""
) -> ApiKeyEvent:
    """Append one event about a connected app to the audit log: ids, never tokens."""
    return ApiKeyEvent.objects.create(
        kind=kind,
        connected_app=app,
        subject_id=app.user_id,
        actor=actor,
        connection=app.connection,
        ip_address=ip,
        workspace_name=app.connection.workspace_name,
        reason=reason,
        detail={
            "client_id": app.client.client_id,
            "client_name": app.client.name,
            "read_only": app.read_only,
        },
    )


def record_app_authorized(app: ConnectedApp) -> None:
    record_app_event(ApiKeyEvent.Kind.APP_AUTHORIZED, app, actor=app.user)


def revoke_connected_app(app: ConnectedApp, *, by, reason: str = "", ip: str | None = None) -> bool:
    """Revoke an app's access at once for every worker: its tokens are deleted, its
    refresh tokens revoked. False if it was revoked already."""
    with transaction.atomic():
        revoked = ConnectedApp.objects.filter(pk=app.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=reason[:500]
        )
        if not revoked:
            return False
        app.refresh_from_db()
        if app.token_family is not None:
            RefreshToken.revoke_family(app.token_family)
        record_app_event(ApiKeyEvent.Kind.APP_REVOKED, app, actor=by, ip=ip, reason=reason)
    return True


def revoke_connected_apps(*, by, reason: str, ip: str | None = None, **which) -> int:
    """Revoke the apps matching `which` (user=..., connection=...) not revoked yet."""
    apps = ConnectedApp.objects.filter(revoked_at__isnull=True, **which).select_related(
        "client", "connection"
    )
    return sum(revoke_connected_app(a, by=by, reason=reason, ip=ip) for a in apps)


def remove_client(client: Application, *, by, ip: str | None = None) -> None:
    """Delete an OAuth client (an admin's act): its connected apps are revoked first, so
    the audit log says so, then the client goes with its tokens and apps."""
    with transaction.atomic():
        revoke_connected_apps(client=client, by=by, reason="OAuth client removed", ip=ip)
        client.delete()


def clear_expired_oauth_rows(*, now=None) -> dict[str, int]:
    """The authorization server's housekeeping (daily, by beat): the toolkit deletes its
    expired access tokens, refresh tokens unused for REFRESH_TOKEN_EXPIRE_SECONDS and
    expired codes; an app left without a live refresh token is revoked (it can't be
    used again without a new consent, and should not stay listed as connected); a
    consent never exchanged for a token (the client went away) is deleted."""
    from oauth2_provider.models import clear_expired, get_refresh_token_model

    now = now or timezone.now()
    clear_expired()
    live_families = get_refresh_token_model().objects.filter(revoked__isnull=True)
    unused = ConnectedApp.objects.live().exclude(
        token_family__in=live_families.values("token_family")
    )
    revoked = sum(
        revoke_connected_app(app, by=None, reason="unused: its refresh token expired")
        for app in unused.select_related("client", "connection")
    )
    abandoned, _ = ConnectedApp.objects.filter(
        token_family__isnull=True, revoked_at__isnull=True, created_at__lt=now - timedelta(days=1)
    ).delete()
    return {"apps_revoked": revoked, "consents_deleted": abandoned}


def delete_old_tool_calls(*, now=None, batch: int = 5000) -> int:
    """Delete the tool-call rows older than TOOL_CALL_RETENTION_DAYS (none if it is 0), a
    batch at a time, each in its own short transaction: one DELETE of millions of rows
    would hold its locks, and grow the WAL, for as long as it ran, while the gateway's
    audit trail keeps inserting. Returns how many rows went."""
    days = settings.TOOL_CALL_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # In time order, along the index on created_at.
    old = ToolCall.objects.filter(created_at__lt=cutoff).order_by("created_at", "pk")
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(old.values_list("pk", flat=True)[:batch])
            if not ids:
                return deleted
            deleted += ToolCall.objects.filter(pk__in=ids).delete()[0]


def roll_api_key(
    key: ApiKey, *, by, overlap: timedelta = timedelta(hours=24), ip: str | None = None
) -> tuple[ApiKey, str]:
    """Replace a key: the successor works at once, the old one until the overlap ends.

    All or nothing, and once per key: the key's row is locked and read again, so a roll
    racing a revocation or another roll of the same key (a double click) sees it.
    """
    with transaction.atomic():
        key = (
            ApiKey.objects.select_for_update(of=("self",))
            .select_related("owner", "connection")
            .get(pk=key.pk)
        )
        if not key.is_active():
            raise ApiKeyError("Only an active key can be rolled.")
        if key.replaced_by_id is not None:
            raise ApiKeyError(
                f"The key “{key.name}” was rolled already and stops working when its overlap "
                "ends. Roll its successor instead."
            )
        successor, plaintext = create_api_key(
            key.owner,
            connection=key.connection,
            name=key.name,
            read_only=key.read_only,
            tool_profile=key.tool_profile,
            expires_at=key.expires_at,
            ip=ip,
        )
        # The overlap never lengthens a key's life; read under the lock, so exact.
        ends = timezone.now() + overlap
        if key.expires_at is not None:
            ends = min(ends, key.expires_at)
        ApiKey.objects.filter(pk=key.pk).update(replaced_by=successor, expires_at=ends)
        record_key_event(
            ApiKeyEvent.Kind.ROLLED,
            key,
            actor=by,
            ip=ip,
            successor=successor.public_id,
            old_key_expires_at=ends.isoformat(),
        )
    return successor, plaintext

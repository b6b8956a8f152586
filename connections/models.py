"""Users' Attio connections, their sealed tokens, and the audit log."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .crypto import KeyRing


def keyring() -> KeyRing:
    return settings.FIELD_ENCRYPTION_KEYRING


class ConnectionQuerySet(models.QuerySet):
    def live(self):
        """Connections not revoked: active, or waiting for a reconnect."""
        return self.exclude(status=Connection.Status.REVOKED)

    def active(self):
        return self.filter(status=Connection.Status.ACTIVE)

    def reconnectable(self):
        """Live connections and those a reconnect can restore."""
        return self.exclude(status=Connection.Status.REVOKED, revoked_by_owner=True)

    def restorable(self):
        """Revoked by an admin (not disconnected by the owner): a reconnect revives them."""
        return self.filter(status=Connection.Status.REVOKED, revoked_by_owner=False)


class Connection(models.Model):
    """One portal user's access to one Attio workspace."""

    class Method(models.TextChoices):
        OAUTH = "oauth", "OAuth"
        API_KEY = "api_key", "Attio API key"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        REVOKED = "revoked", "Revoked"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="attio_connections",
    )
    method = models.CharField(max_length=16, choices=Method.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    workspace_id = models.CharField(max_length=64)
    workspace_name = models.CharField(max_length=200, blank=True)
    workspace_slug = models.CharField(max_length=200, blank=True)
    # The Attio workspace member who authorized the token.
    attio_member_id = models.CharField(max_length=64, blank=True)
    scopes = models.TextField(blank=True, help_text="Space-separated, as Attio grants them")

    # Sealed with AES-256-GCM (see crypto.py); never plaintext. Empty once revoked.
    access_token_sealed = models.TextField(blank=True, editable=False)
    refresh_token_sealed = models.TextField(blank=True, editable=False)
    # Increases with every credential change, so a late writer can tell it lost a race.
    version = models.PositiveIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=500, blank=True)
    # Disconnected by its owner (as opposed to revoked by an admin or a deactivation):
    # such a connection is gone for good, and its API keys with it.
    revoked_by_owner = models.BooleanField(default=False)
    # When the owner was told this connection needs reconnecting (once per incident).
    notified_at = models.DateTimeField(null=True, blank=True)
    # Set when the sweep enqueues this connection, so a second sweep (beat firing twice,
    # two beats) doesn't enqueue it again; cleared when the work is done.
    sweep_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error_message = models.CharField(max_length=500, blank=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "workspace_id"],
                condition=~Q(status="revoked"),
                name="one_live_connection_per_workspace",
            )
        ]
        indexes = [models.Index(fields=["status", "last_checked_at"])]

    def __str__(self) -> str:
        workspace = self.workspace_name or self.workspace_id or "no workspace"
        return f"Connection {self.pk} ({self.owner.email or self.owner}, {workspace})"

    def __repr__(self) -> str:
        return f"<Connection {self.pk} status={self.status} workspace={self.workspace_id}>"

    def _aad(self, field: str) -> str:
        # Binds each ciphertext to this row and field: copied elsewhere, it won't open.
        assert self.pk is not None, "save the connection before sealing tokens"
        return f"connections.Connection:{self.pk}:{field}"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def has_refresh_token(self) -> bool:
        return bool(self.refresh_token_sealed)

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.ACTIVE and bool(self.access_token_sealed)

    def access_token(self) -> str:
        return keyring().open(self.access_token_sealed, aad=self._aad("access_token"))

    def refresh_token(self) -> str | None:
        if not self.refresh_token_sealed:
            return None
        return keyring().open(self.refresh_token_sealed, aad=self._aad("refresh_token"))

    def set_credentials(
        self,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
    ) -> None:
        """Seal new credentials into this row (the caller saves it)."""
        ring = keyring()
        self.access_token_sealed = ring.seal(access_token, aad=self._aad("access_token"))
        self.refresh_token_sealed = (
            ring.seal(refresh_token, aad=self._aad("refresh_token")) if refresh_token else ""
        )
        self.expires_at = expires_at
        self.version += 1

    def reseal(self) -> bool:
        """Re-encrypt under the newest key; the credentials (and version) stay."""
        ring = keyring()
        sealed = [self.access_token_sealed, self.refresh_token_sealed]
        if all(not s or ring.is_current(s) for s in sealed):
            return False
        if self.access_token_sealed:
            self.access_token_sealed = ring.seal(self.access_token(), aad=self._aad("access_token"))
        if self.refresh_token_sealed:
            self.refresh_token_sealed = ring.seal(
                self.refresh_token(), aad=self._aad("refresh_token")
            )
        return True

    def clear_credentials(self) -> None:
        self.access_token_sealed = ""
        self.refresh_token_sealed = ""
        self.version += 1

    def mark_active(self, *, checked_at: datetime) -> None:
        self.status = self.Status.ACTIVE
        self.sweep_claimed_at = None
        self.revoked_at = None
        self.revoked_reason = ""
        self.revoked_by_owner = False
        self.last_checked_at = checked_at
        self.last_error_code = ""
        self.last_error_message = ""
        self.notified_at = None

    def mark_needs_reconnect(self, *, code: str, message: str) -> None:
        self.status = self.Status.NEEDS_RECONNECT
        self.last_error_code = code[:64]
        self.last_error_message = message[:500]

    def mark_revoked(self, *, at: datetime, reason: str = "", by_owner: bool = False) -> None:
        self.clear_credentials()
        self.status = self.Status.REVOKED
        self.revoked_at = at
        self.revoked_reason = reason[:500]
        self.revoked_by_owner = by_owner

    @property
    def can_be_restored(self) -> bool:
        """Revoked by an admin: reconnecting restores it in place, with its API keys."""
        return self.status == self.Status.REVOKED and not self.revoked_by_owner


class PendingRevocation(models.Model):
    """A token to revoke at Attio, kept (sealed) only until Attio confirms.

    Disconnecting destroys the connection's tokens at once; if Attio's revoke endpoint
    fails, the token waits here and a task retries.
    """

    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    token_sealed = models.TextField(editable=False)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"Pending revocation {self.pk} (connection {self.connection_id})"

    def _aad(self) -> str:
        assert self.pk is not None
        return f"connections.PendingRevocation:{self.pk}:token"

    def seal_token(self, token: str) -> None:
        self.token_sealed = keyring().seal(token, aad=self._aad())

    def token(self) -> str:
        return keyring().open(self.token_sealed, aad=self._aad())

    def reseal(self) -> bool:
        if keyring().is_current(self.token_sealed):
            return False
        self.seal_token(self.token())
        return True


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The audit log is append-only")

    def delete(self):
        raise TypeError("The audit log is append-only")


class AppendOnlyModel(models.Model):
    """A row of an audit log: written once, never changed or deleted through the ORM."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("The audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The audit log is append-only")


class AuditEvent(AppendOnlyModel):
    """An append-only record of a credential event. Never holds a secret."""

    class Kind(models.TextChoices):
        CONNECTED = "connected", "Connected"
        RECONNECTED = "reconnected", "Reconnected"
        CONNECT_FAILED = "connect_failed", "Connect failed"
        CHECKED = "checked", "Checked"
        CHECK_FAILED = "check_failed", "Check failed"
        REFRESHED = "refreshed", "Refreshed"
        REFRESH_RESPONSE_LOST = "refresh_response_lost", "Refresh answer lost"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        DISCONNECTED = "disconnected", "Disconnected by user"
        REVOKED_BY_ADMIN = "revoked_by_admin", "Revoked by admin"
        UPSTREAM_REVOKED = "upstream_revoked", "Revoked at Attio"
        UPSTREAM_REVOKE_FAILED = "upstream_revoke_failed", "Revoke at Attio failed"
        USER_DEACTIVATED = "user_deactivated", "User deactivated"
        USER_CREATED_BY_SIGN_IN = "user_created_by_sign_in", "User created at first sign-in"
        KEYS_REENCRYPTED = "keys_reencrypted", "Tokens re-encrypted"

    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    # Who did it (empty for the system) and to whom.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    connection = models.ForeignKey(
        Connection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    workspace_name = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"

"""What MCP clients reach a user's Attio connection with: portal-issued API keys, and
connected apps (OAuth clients a user authorized, mcp_gateway/oauth_server.py)."""

import hmac
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import Application

from connections.models import AppendOnlyModel, Connection

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIX = "attp_"
PUBLIC_ID_LENGTH = 12
# 43 base62 characters carry 256 bits (62**43 > 2**256).
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6


def base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    # One draw over all 62**length values: every digit uniform, ~50x fewer calls.
    return base62(secrets.randbelow(62**length), length)


def new_key() -> tuple[str, str]:
    """A fresh key: (public id, plaintext), the plaintext ending in its checksum."""
    public_id = random_base62(PUBLIC_ID_LENGTH)
    body = f"{PREFIX}{public_id}_{random_base62(SECRET_LENGTH)}"
    return public_id, body + checksum(body)


def checksum(body: str) -> str:
    """CRC32 of the rest of the key, so scanners and the portal spot a mangled key."""
    return base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def key_digest(key: str) -> str:
    return hmac.new(settings.API_KEY_HMAC_SECRET.encode(), key.encode(), sha256).hexdigest()


class ToolProfile(models.TextChoices):
    """Which tools a key or connected app is shown: every tool, or a few that reach all of
    Attio in few tokens (tools/__init__.py, COMPACT)."""

    FULL = "full", "Full: every tool"
    COMPACT = "compact", "Compact: search, schema and the generic Attio request"


class ApiKeyQuerySet(models.QuerySet):
    def issue(
        self,
        owner,
        *,
        connection: Connection,
        name: str,
        read_only: bool = False,
        tool_profile: str = ToolProfile.FULL,
        expires_at: datetime | None = None,
        form_nonce: str | None = None,
    ) -> tuple["ApiKey", str]:
        """Create a key. Returns (row, plaintext); the plaintext is never stored."""
        public_id, plaintext = new_key()
        key = self.create(
            owner=owner,
            connection=connection,
            name=name,
            read_only=read_only,
            tool_profile=tool_profile,
            expires_at=expires_at,
            public_id=public_id,
            digest=key_digest(plaintext),
            last_four=plaintext[-4:],
            form_nonce=form_nonce,
        )
        return key, plaintext

    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)


class ApiKey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    # The Attio connection (workspace) this key acts on.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    read_only = models.BooleanField(default=False)
    tool_profile = models.CharField(
        max_length=16, choices=ToolProfile.choices, default=ToolProfile.FULL
    )
    public_id = models.CharField(max_length=PUBLIC_ID_LENGTH, unique=True, editable=False)
    # HMAC-SHA256 of the whole key under API_KEY_HMAC_SECRET; the key itself is never kept.
    digest = models.CharField(max_length=64, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_reason = models.CharField(max_length=500, blank=True, editable=False)
    # The creation form's one-time id: a reloaded or resubmitted form can't make a second
    # key (the secret can't be shown again, so it never leaves the first response).
    # NULL, not "", for keys made elsewhere: the column is unique.
    form_nonce = models.CharField(  # noqa: DJ001
        max_length=64, null=True, unique=True, editable=False
    )
    # Set when the key is rolled: the key that replaces it (this one then works until
    # the overlap ends). A key is rolled once.
    replaced_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API key {self.name!r} ({PREFIX}{self.public_id}_…)"

    def __repr__(self) -> str:
        return f"<ApiKey {self.pk} {self.public_id}>"

    @property
    def display_id(self) -> str:
        return f"{PREFIX}{self.public_id}_…{self.last_four}"

    @property
    def scope(self) -> str:
        return "read-only" if self.read_only else "read-write"

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if not self.is_active():
            return "expired"
        return "active"


class ConnectedAppQuerySet(models.QuerySet):
    def live(self):
        """Authorized and not revoked: its tokens work."""
        return self.filter(revoked_at__isnull=True, token_family__isnull=False)


class ConnectedApp(models.Model):
    """An OAuth client a user let act on one of their Attio connections: one consent on
    the portal's authorize page, and every token issued and refreshed from it.

    django-oauth-toolkit keeps the tokens (hashed) and the client (Application); this
    row says on whose connection they act and whether they may write. Its refresh
    tokens share `token_family`, which is how an access token finds its way here (its
    refresh token's family). Revoked, it is kept for the record and its tokens are deleted;
    removing its client deletes it (the audit events keep the client's id and name).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connected_apps"
    )
    client = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="connected_apps"
    )
    read_only = models.BooleanField(default=True)
    tool_profile = models.CharField(
        max_length=16, choices=ToolProfile.choices, default=ToolProfile.FULL
    )
    # SHA-256 of the authorization code the consent produced: a replayed code finds
    # the app it already authorized, which is then revoked (RFC 9700 4.2.1).
    code_checksum = models.CharField(max_length=64, unique=True, editable=False)
    # Set when the code is exchanged: the family of its refresh tokens.
    token_family = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_reason = models.CharField(max_length=500, blank=True, editable=False)

    objects = ConnectedAppQuerySet.as_manager()

    class Meta:
        verbose_name = "connected app"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_name} for {self.connection.workspace_name}"

    def __repr__(self) -> str:
        return f"<ConnectedApp {self.pk} client={self.client_id}>"

    @property
    def client_name(self) -> str:
        return self.client.name or self.client.client_id

    @property
    def scope(self) -> str:
        return "read-only" if self.read_only else "read-write"

    @property
    def audit_id(self) -> str:
        """How the audit trail and MCP's AccessToken name it: never a token."""
        return f"oauth-app:{self.pk}"


class ApiKeyEvent(AppendOnlyModel):
    """An append-only record of what happened to a portal API key or a connected app.
    Never holds a secret."""

    class Kind(models.TextChoices):
        CREATED = "key_created", "API key created"
        REVOKED = "key_revoked", "API key revoked"
        ROLLED = "key_rolled", "API key rolled"
        APP_AUTHORIZED = "app_authorized", "OAuth app authorized"
        APP_REVOKED = "app_revoked", "OAuth app revoked"

    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    # Who did it (empty for the system), and the key's owner.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_key_events",
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    connected_app = models.ForeignKey(
        ConnectedApp, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    workspace_name = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    # The key's public id (kept when the key row is gone) and what else the event says.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "API key event"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ToolCall(models.Model):
    """One MCP tool call, for the audit trail. Holds ids and outcomes, never arguments."""

    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="+")
    # The OAuth client that made the call, for a call made with an OAuth token.
    connected_app = models.ForeignKey(
        ConnectedApp, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    tool = models.CharField(max_length=64)
    # For the generic `attio_request` tool: the Attio operation it called ("GET
    # /v2/objects/{object}/records/{record_id}"), never its values.
    operation = models.CharField(max_length=128, blank=True)
    # The records (or list entries) a write changed or deleted, by id.
    record_ids = models.JSONField(default=list, blank=True)
    ok = models.BooleanField()
    # The last HTTP status Attio answered (none when Attio was never called).
    attio_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["-created_at"]
        # A user's own usage (the dashboard) and their rows in the admin.
        indexes = [models.Index(fields=["owner", "created_at"], name="toolcall_owner_time")]

    def __str__(self) -> str:
        return f"{self.tool} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Tool call records are append-only")
        super().save(*args, **kwargs)


class ToolCallDay(models.Model):
    """The tool calls of one past day (UTC) by one user, on one connection, of one tool:
    what the usage page reads for days that are over, instead of every row
    (mcp_gateway/usage.py). Made by `usage.roll_up`, once a day is over."""

    day = models.DateField(db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    tool = models.CharField(max_length=64)
    calls = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.tool} on {self.day}: {self.calls} calls"


class ToolCallDuration(models.Model):
    """How many of one past day's tool calls took about as long: durations in buckets 2 %
    wide (usage.BUCKET_RATIO), from which the usage page reads p50 and p95."""

    day = models.DateField(db_index=True)
    bucket = models.PositiveSmallIntegerField()
    calls = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.calls} calls in bucket {self.bucket} on {self.day}"


class RolledUpDay(models.Model):
    """A day whose tool calls are in ToolCallDay and ToolCallDuration."""

    day = models.DateField(primary_key=True)
    rolled_up_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.day} rolled up"


class ToolPolicyQuerySet(models.QuerySet):
    def applying_to(self, user_id: int):
        """The policies given to the user, directly or through one of their groups."""
        return self.filter(Q(users=user_id) | Q(groups__user=user_id)).distinct()

    def access_of(self, user_id: int) -> "ToolAccess | None":
        rows = self.applying_to(user_id).values_list("name", "all_read_tools", "tools")
        return ToolAccess.of(rows)


class ToolPolicy(models.Model):
    """A tool set an admin gives to groups and users: the tools their API keys and
    connected apps may be shown and call, on top of each one's scope and profile.

    A user under no policy has every tool their scope and profile allow (as before
    policies existed); under one or more, only the tools one of them allows (ToolAccess).
    Read on every MCP request with the credential, so a change counts from the next one.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    all_read_tools = models.BooleanField(
        "every read tool",
        default=False,
        help_text=(
            "Every tool that only reads, including tools added later, and attio_request "
            "for Attio's read operations."
        ),
    )
    # Tool names (tools.REGISTRY). attio_request listed here may also write, within the
    # caller's scope; under "every read tool" alone it may only read.
    tools = models.JSONField("tools", default=list, blank=True)
    groups = models.ManyToManyField(Group, blank=True, related_name="tool_policies")
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="tool_policies"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolPolicyQuerySet.as_manager()

    class Meta:
        verbose_name = "tool policy"
        verbose_name_plural = "tool policies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ToolAccess:
    """What a user's tool policies allow together: the tools any of them lists, and every
    read tool if any of them says so (mcp_gateway/policy.py applies it)."""

    policies: tuple[str, ...]
    all_read_tools: bool
    tools: frozenset[str]

    @classmethod
    def of(cls, rows) -> "ToolAccess | None":
        """From (name, all_read_tools, tools) rows; None (no limit) if there are none."""
        rows = sorted(rows)
        if not rows:
            return None
        return cls(
            policies=tuple(name for name, _, _ in rows),
            all_read_tools=any(reads for _, reads, _ in rows),
            tools=frozenset(
                name
                for _, _, listed in rows
                if isinstance(listed, list)
                for name in listed
                if isinstance(name, str)
            ),
        )

    @property
    def sorted_tools(self) -> list[str]:
        return sorted(self.tools)

    @property
    def named(self) -> str:
        """The policies as the refusals name them: `"Sales"` or `"Sales" and "Support"`."""
        quoted = [f'"{name}"' for name in self.policies]
        if len(quoted) == 1:
            return quoted[0]
        return ", ".join(quoted[:-1]) + " and " + quoted[-1]

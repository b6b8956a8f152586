"""Who is calling /mcp: a presented API key or OAuth access token -> the Caller (user,
connection, read-only or not, and the key or connected app), or None; and the SDK's
TokenVerifier on top of that (PortalVerifier).

A key its holder may no longer use (revoked, rolled, expired) raises KeyRefused instead,
so the 401 can say why; only refusals do any work to tell them apart.

The rules (`public_id_of`, `accept`, `last_used_is_due`) are here, with CredentialChecks,
which applies them through the ORM on any database. On PostgreSQL the server uses
postgres_checks.PostgresCredentialChecks instead: the same rules on a pool of its own.
"""

import contextlib
import hmac
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.utils import timezone
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken as SdkAccessToken
from oauth2_provider.models import AccessToken

from connections.models import Connection

from . import oauth_server
from .models import (
    ALPHABET,
    CHECKSUM_LENGTH,
    PREFIX,
    PUBLIC_ID_LENGTH,
    SECRET_LENGTH,
    ApiKey,
    ConnectedApp,
    ToolAccess,
    ToolPolicy,
    checksum,
    key_digest,
)

KEY_PATTERN = re.compile(
    rf"{PREFIX}(?P<public_id>[{ALPHABET}]{{{PUBLIC_ID_LENGTH}}})_"
    rf"[{ALPHABET}]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}}"
)


def public_id_of(presented: str) -> str | None:
    """The key's public id if it is well formed and its checksum matches, else None.

    Malformed and mistyped keys are turned away here, without a database query.
    """
    match = KEY_PATTERN.fullmatch(presented)
    if match is None:
        return None
    body, check = presented[:-CHECKSUM_LENGTH], presented[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(checksum(body), check):
        return None
    return match["public_id"]


class KeyRefused(Exception):
    """The presented key is a real one, presented by someone who holds it (its checksum,
    row and secret all match), but it may no longer be used: revoked, rolled past its
    overlap, or expired. Only such a refusal says why (`description`, for the 401): any
    other key, made up or with a wrong secret, gets the generic answer, so a guess learns
    nothing."""

    def __init__(self, key: ApiKey) -> None:
        super().__init__(f"API key {key.public_id} may no longer be used")
        self.key = key

    @property
    def description(self) -> str:
        # Plain ASCII, no quotes or backslashes: it goes in a WWW-Authenticate header.
        key = self.key
        dashboard = f"{settings.PORTAL_BASE_URL}/"
        if key.revoked_at is not None:
            return (
                f"This API key was revoked. Create a new one on the portal dashboard: {dashboard}"
            )
        ended = f"{key.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if key.replaced_by_id is not None:
            return (
                f"This API key was rolled: it was replaced by a new key and stopped working "
                f"at {ended}. Use the new key, or create one on the portal dashboard: "
                f"{dashboard}"
            )
        return (
            f"This API key expired at {ended}. Create a new one on the portal dashboard: "
            f"{dashboard}"
        )


def accept(presented: str, key: ApiKey | None, now: datetime) -> ApiKey | None:
    """The key if it is the one presented and may be used now, else None.

    Raises KeyRefused if it is the one presented but revoked, rolled or expired.
    """
    if key is None or not hmac.compare_digest(key.digest, key_digest(presented)):
        return None
    if not key.owner.is_active:
        return None  # a deactivated user's: nothing they can do about it on the portal
    if not key.is_active(now):
        raise KeyRefused(key)
    return key


# How often at most a key's last_used_at is written, whatever the traffic.
LAST_USED_RESOLUTION = 60


def last_used_is_due(key: "ApiKey | ConnectedApp", now: datetime) -> bool:
    return key.last_used_at is None or (now - key.last_used_at).total_seconds() >= (
        LAST_USED_RESOLUTION
    )


def close_stale_database_connections() -> None:
    """Django's per-request connection upkeep (as close_old_connections does), for code
    that runs outside its request cycle: drop connections past CONN_MAX_AGE or broken.
    A connection inside a transaction (a test's) is left alone."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def close_database_connections() -> None:
    """Close this thread's connections (but not one inside a transaction, a test's)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def check_api_key(presented: str) -> ApiKey | None:
    """The active key for `presented` (its owner and connection loaded), or None; its
    last_used_at noted when due. Through the ORM, in the caller's thread.

    Raises KeyRefused for the right key revoked, rolled or expired.
    """
    public_id = public_id_of(presented)
    if public_id is None:
        return None
    close_stale_database_connections()
    # Always a fresh row: revocation, expiry and deactivation count from the next request.
    found = ApiKey.objects.select_related("owner", "connection").filter(public_id=public_id)
    now = timezone.now()
    key = accept(presented, found.first(), now)
    if key is not None:
        key.owner.tool_access = ToolPolicy.objects.access_of(key.owner_id)
    if key is not None and last_used_is_due(key, now):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def token_is_usable(token: AccessToken | None, now: datetime) -> bool:
    """An access token not expired and issued for this /mcp (RFC 8707 audience)."""
    if token is None or token.expires <= now:
        return False
    return any(oauth_server.is_this_resource(r) for r in token.resource or [])


def oauth_caller(token: AccessToken, app: ConnectedApp) -> tuple["Caller", int]:
    """The Caller of a usable token of a live app, and when the token expires. The token
    may carry less than the app (a refresh that asked for attio.read only)."""
    read_only = app.read_only or oauth_server.WRITE not in token.scope.split()
    return Caller.of_app(app, read_only=read_only), int(token.expires.timestamp())


def check_oauth_token(presented: str) -> tuple["Caller", int] | None:
    """The Caller of a connected app's access token and when the token expires, or None:
    unknown, expired, for another resource, or its app revoked (through the ORM, in the
    caller's thread).

    A fresh read on every request, as for keys: a revoked app's tokens fail at once.
    """
    if not oauth_server.looks_like_access_token(presented):
        return None
    close_stale_database_connections()
    checksum = oauth_server.token_checksum(presented)
    token = AccessToken.objects.select_related("refresh_token").filter(token_checksum=checksum)
    token = token.first()
    now = timezone.now()
    if not token_is_usable(token, now):
        return None
    try:
        family = token.refresh_token.token_family
    except ObjectDoesNotExist:
        return None  # not issued by an authorization code (a registration token)
    app = ConnectedApp.objects.live().select_related("user", "connection", "client")
    app = app.filter(token_family=family).first()
    if app is None or not app.user.is_active:
        return None
    app.user.tool_access = ToolPolicy.objects.access_of(app.user_id)
    if last_used_is_due(app, now):
        ConnectedApp.objects.filter(pk=app.pk).update(last_used_at=now)
        app.last_used_at = now
    return oauth_caller(token, app)


class DatabaseUnavailable(Exception):
    """A key could not be checked: the database did not answer. The request can be tried
    again later; it is neither accepted nor refused."""


class CredentialChecks:
    """How the MCP server checks each request's API key or OAuth access token, on any
    database (SQLite in development): `check_api_key` and `check_oauth_token` in the one
    thread that runs the gateway's ORM work.

    On PostgreSQL the server uses postgres_checks.PostgresCredentialChecks instead: the
    same interface and rules at a fraction of the CPU (bench/key_check.py).
    """

    # Made once: building a SyncToAsync wrapper inspects the function, on every call otherwise.
    _check_in_orm_thread = staticmethod(sync_to_async(check_api_key))
    _check_token_in_orm_thread = staticmethod(sync_to_async(check_oauth_token))

    async def check(self, presented: str) -> ApiKey | None:
        """The active key (with its owner and connection loaded) or None.

        Raises KeyRefused for the right key revoked, rolled or expired, and
        DatabaseUnavailable if the database can't be reached.
        """
        if public_id_of(presented) is None:
            return None  # malformed or mistyped: no thread hop, no query
        try:
            return await self._check_in_orm_thread(presented)
        except (OperationalError, InterfaceError) as e:
            raise DatabaseUnavailable from e

    async def check_oauth_token(self, presented: str) -> tuple["Caller", int] | None:
        """The Caller of a connected app's access token and its expiry, or None.

        Raises DatabaseUnavailable if the database can't be reached."""
        if not oauth_server.looks_like_access_token(presented):
            return None
        try:
            return await self._check_token_in_orm_thread(presented)
        except (OperationalError, InterfaceError) as e:
            raise DatabaseUnavailable from e

    @contextlib.asynccontextmanager
    async def running(self):
        """Whatever the checks hold open, for the MCP server's lifespan (here: nothing)."""
        yield


def credential_checks():
    """The checks for this project's database: CredentialChecks or PostgresCredentialChecks."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        # Imported here: that module builds on this one's rules (accept, public_id_of).
        from .postgres_checks import PostgresCredentialChecks

        return PostgresCredentialChecks(connection)
    return CredentialChecks()


# --- The caller, and the SDK's verifier ---------------------------------------------------


@dataclass
class Outcome:
    """What a tool call met, for its audit row (policy.py): the status of Attio's last
    answer and the code of the failure it ended with. Filled in as the tool runs
    (tools/_call.py)."""

    attio_status: int | None = None
    error_code: str = ""
    # `attio_request`'s operation ("GET /v2/objects/{object}"), and the ids of the
    # records or entries a write changed: kept in the audit row, never the values.
    operation: str = ""
    record_ids: list[str] = field(default_factory=list)

    def saw_answer(self, status: int) -> None:
        self.attio_status = status


@dataclass(frozen=True)
class Caller:
    """Who is calling: the portal user, the Attio connection the call acts on and whether
    it may write, and what vouched for them: an API key, or a connected app's OAuth
    access token (`app`). Tools, the policy and the audit trail see no other difference.
    `tool_access` is what the user's tool policies allow, None if none applies to them.

    One per HTTP request, made by the verifier. A stateless POST carries exactly one
    JSON-RPC message (the SDK refuses batches), so `outcome` is that one call's.
    """

    user: AbstractBaseUser
    connection: Connection
    read_only: bool
    # No default: a Caller made without it would be limited by no policy.
    tool_access: ToolAccess | None
    key: ApiKey | None = None
    app: ConnectedApp | None = None
    outcome: Outcome = field(default_factory=Outcome, compare=False)

    # Both take the owner's `tool_access` as the credential check read it with the key or
    # token.
    @classmethod
    def of(cls, key: ApiKey) -> "Caller":
        return cls(
            user=key.owner,
            connection=key.connection,
            read_only=key.read_only,
            key=key,
            tool_access=key.owner.tool_access,
        )

    @classmethod
    def of_app(cls, app: ConnectedApp, *, read_only: bool) -> "Caller":
        return cls(
            user=app.user,
            connection=app.connection,
            read_only=read_only,
            app=app,
            tool_access=app.user.tool_access,
        )

    @property
    def scopes(self) -> list[str]:
        return [oauth_server.READ] if self.read_only else [oauth_server.READ, oauth_server.WRITE]

    @property
    def tool_profile(self) -> str:
        """`full` or `compact` (models.ToolProfile): which tools it is shown and may call."""
        return (self.key or self.app).tool_profile

    @property
    def bucket(self) -> str:
        """What its calls are counted by for the rate limit: the key, or the app."""
        return f"key:{self.key.pk}" if self.key is not None else f"app:{self.app.pk}"


def current_caller() -> Caller:
    """This request's Caller.

    The SDK hands what the verifier answered (the AccessToken) to the rest of the request
    only through its own context variable, read with get_access_token(). This is the one
    place the gateway reads it: the policy middleware calls it, and so does each tool's
    run (tools/_call.py, `as_sdk_tool`), which hands the Caller to the tool as its first
    argument.
    """
    access = get_access_token()
    if access is None or not access.claims or "caller" not in access.claims:
        # The SDK's auth middleware guarantees a verified key or token on /mcp.
        raise RuntimeError("no authenticated API key or OAuth token in this request")
    return access.claims["caller"]


class Refusal:
    """What http.py must say in this request's answer that the SDK can't: why a real key
    was refused (KeyRefused, in the 401), or that a read-only OAuth grant asked for a
    write (a 403 `insufficient_scope` naming the scope to ask for, so the client can
    ask the user again). http.py makes one per request."""

    description: str | None = None
    insufficient_scope: str | None = None


# The current request's Refusal, set by http.py and filled in by PortalVerifier and the
# policy: the gateway's one context variable of its own. The SDK calls the verifier
# with the token alone and answers a refusal with its own 401, and a tool call's answer
# is a 200 the SDK writes; nothing else carries "why" back to http.py, which rewrites
# those answers. Everything else after the key check travels in the Caller.
refusal: ContextVar[Refusal | None] = ContextVar("mcp_key_refusal", default=None)


class PortalVerifier:
    """The SDK's TokenVerifier for /mcp: a portal API key or a connected app's OAuth
    access token, told apart by their prefixes. Either way the Caller goes in the
    AccessToken's claims."""

    def __init__(self, checks) -> None:
        """`checks`: a CredentialChecks or a PostgresCredentialChecks."""
        self.checks = checks

    async def verify_token(self, token: str) -> SdkAccessToken | None:
        if token.startswith(oauth_server.ACCESS_TOKEN_PREFIX):
            return await self.verify_oauth_token(token)
        try:
            key = await self.checks.check(token)
        except KeyRefused as refused:
            this_request = refusal.get()
            if this_request is not None:
                this_request.description = refused.description
            return None
        if key is None:
            return None
        caller = Caller.of(key)
        return SdkAccessToken(
            token=token,
            client_id=f"api-key:{key.public_id}",
            scopes=caller.scopes,
            expires_at=int(key.expires_at.timestamp()) if key.expires_at else None,
            resource=oauth_server.mcp_url(),
            subject=str(key.owner_id),
            claims={"caller": caller},
        )

    async def verify_oauth_token(self, token: str) -> SdkAccessToken | None:
        checked = await self.checks.check_oauth_token(token)
        if checked is None:
            return None
        caller, expires_at = checked
        return SdkAccessToken(
            token=token,
            client_id=caller.app.audit_id,
            scopes=caller.scopes,
            expires_at=expires_at,
            resource=oauth_server.mcp_url(),
            subject=str(caller.user.pk),
            claims={"caller": caller},
        )

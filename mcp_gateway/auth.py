"""A presented API key -> the Caller (its key, owner and connection), or None; and the
SDK's TokenVerifier on top of that.

A key its holder may no longer use (revoked, rolled, expired) raises KeyRefused instead,
so the 401 can say why; only refusals do any work to tell them apart.
"""

import contextlib
import hmac
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db import connection as db
from django.utils import timezone
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from connections.models import Connection

from .models import (
    ALPHABET,
    CHECKSUM_LENGTH,
    PREFIX,
    PUBLIC_ID_LENGTH,
    SECRET_LENGTH,
    ApiKey,
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


class KeyQuery:
    """The key, its owner and its connection in one SELECT whose SQL is built once.

    This runs on every MCP request. The ORM equivalent,
    `ApiKey.objects.select_related("owner", "connection").filter(public_id=...).first()`,
    spent ~1.5 ms of CPU per call compiling the same three-table join and building the
    rows (bench/gateway.py, bench/README.md "Gateway"); executing prebuilt SQL and making
    the instances with `Model.from_db` costs ~0.25 ms. The columns come from the models'
    `_meta`, and values pass through the same database converters the ORM applies, so the
    instances are what the ORM would have returned, whichever connection ran the query
    (Django's, or the gateway's own pool on PostgreSQL: `PostgresKeyChecks`).
    """

    def __init__(self, connection) -> None:
        qn = connection.ops.quote_name
        user_model = get_user_model()
        self.parts = [(ApiKey, "k"), (user_model, "u"), (Connection, "c")]
        columns = []
        self.converters = []
        for model, alias in self.parts:
            for f in model._meta.concrete_fields:
                columns.append(f"{alias}.{qn(f.column)}")
                col = f.get_col(alias)
                funcs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if funcs:
                    self.converters.append((len(columns) - 1, funcs, col))

        def join(model, alias: str, fk: str) -> str:
            on = f"{alias}.{qn(model._meta.pk.column)} = k.{qn(ApiKey._meta.get_field(fk).column)}"
            return f"JOIN {qn(model._meta.db_table)} {alias} ON {on}"

        self.sql = (
            f"SELECT {', '.join(columns)} FROM {qn(ApiKey._meta.db_table)} k "
            f"{join(user_model, 'u', 'owner')} {join(Connection, 'c', 'connection')} "
            f"WHERE k.{qn(ApiKey._meta.get_field('public_id').column)} = %s"
        )

        self.last_used_sql = (
            f"UPDATE {qn(ApiKey._meta.db_table)} "
            f"SET {qn(ApiKey._meta.get_field('last_used_at').column)} = %s "
            f"WHERE {qn(ApiKey._meta.pk.column)} = %s"
        )

    def fetch(self, connection, public_id: str) -> ApiKey | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [public_id])
            return self.build(connection, cursor.fetchone())

    def build(self, connection, row) -> ApiKey | None:
        """The key, its owner and its connection from one row of `sql` (or None)."""
        if row is None:
            return None
        row = list(row)
        for index, funcs, col in self.converters:
            for convert in funcs:
                row[index] = convert(row[index], col, connection)
        instances = []
        start = 0
        for model, _ in self.parts:
            fields = model._meta.concrete_fields
            values = row[start : start + len(fields)]
            instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
            start += len(fields)
        key, owner, key_connection = instances
        key.owner, key.connection = owner, key_connection
        return key


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


def last_used_is_due(key: ApiKey, now: datetime) -> bool:
    return key.last_used_at is None or (now - key.last_used_at).total_seconds() >= (
        LAST_USED_RESOLUTION
    )


_key_queries: dict[str, KeyQuery] = {}


def key_query(connection) -> KeyQuery:
    query = _key_queries.get(connection.vendor)
    if query is None:
        query = _key_queries[connection.vendor] = KeyQuery(connection)
    return query


def check_key(presented: str) -> ApiKey | None:
    """The active key for `presented`, or None: one query, in the caller's thread.

    Raises KeyRefused for the right key revoked, rolled or expired.
    """
    public_id = public_id_of(presented)
    if public_id is None:
        return None
    # Always a fresh row: revocation, expiry and deactivation count from the next request.
    return accept(presented, key_query(db).fetch(db, public_id), timezone.now())


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


def check_key_and_note_use(presented: str) -> ApiKey | None:
    """A request's key check through the ORM's connection: all of it in one thread hop."""
    close_stale_database_connections()
    key = check_key(presented)
    if key is not None and last_used_is_due(key, now := timezone.now()):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class DatabaseUnavailable(Exception):
    """A key could not be checked: the database did not answer. The request can be tried
    again later; it is neither accepted nor refused."""


class KeyChecks:
    """How the MCP server checks each request's key: through Django's connection, in the
    one thread that runs the gateway's ORM work (any database; SQLite in development)."""

    # Made once: building a SyncToAsync wrapper inspects the function, on every call otherwise.
    _check_in_orm_thread = staticmethod(sync_to_async(check_key_and_note_use))

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

    @contextlib.asynccontextmanager
    async def running(self):
        yield


class PostgresKeyChecks(KeyChecks):
    """Key checks on PostgreSQL, made in the event loop on a small pool of the worker's own.

    The same query and rules as `check_key`, minus the thread hop: on the ORM's connection
    each check went to another thread and back, and the GIL hand-offs around its socket
    waits cost more CPU than the query (bench/README.md, "Gateway"). A fresh row on every
    request, as before, so revocation still counts from the next request in every worker.
    The pool opens and closes with the MCP server's lifespan.
    """

    # Each uvicorn worker holds up to this many connections for key checks.
    CONNECTIONS = 4
    # A request waits this long for one of them (all busy, or the database unreachable).
    WAIT_SECONDS = 5
    # How they show in pg_stat_activity.
    APPLICATION_NAME = "attio-portal mcp key checks"

    def __init__(self, connection) -> None:
        self.connection = connection
        self.query = key_query(connection)
        self.pool: AsyncConnectionPool | None = None

    @contextlib.asynccontextmanager
    async def running(self):
        params = self.connection.get_connection_params()
        params.pop("cursor_factory", None)  # Django's is for its own synchronous cursors
        params.setdefault("application_name", self.APPLICATION_NAME)
        self.pool = AsyncConnectionPool(
            kwargs={**params, "autocommit": True},
            min_size=1,
            max_size=self.CONNECTIONS,
            timeout=self.WAIT_SECONDS,
            name="mcp-key-checks",
            open=False,
        )
        # Not waiting for a connection: the server starts even with the database away.
        await self.pool.open(wait=False)
        try:
            yield
        finally:
            pool, self.pool = self.pool, None
            await pool.close()

    async def check(self, presented: str) -> ApiKey | None:
        public_id = public_id_of(presented)
        if public_id is None:
            return None
        if self.pool is None:
            raise RuntimeError("the MCP server's lifespan is not running (uvicorn --lifespan on)")
        try:
            try:
                return await self._check(presented, public_id)
            except PoolTimeout:
                raise  # no connection to be had: the pool is already trying to make one
            except psycopg.OperationalError:
                # Connections the server closed (a restart, an idle timeout) fail their
                # next query. Have the pool test its idle ones and replace the broken, then
                # try once more: a database that is really away fails that try too.
                await self.pool.check()
                return await self._check(presented, public_id)
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable from e

    async def _check(self, presented: str, public_id: str) -> ApiKey | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self.query.sql, [public_id])
            now = timezone.now()
            key = accept(presented, self.query.build(self.connection, await cursor.fetchone()), now)
            if key is not None and last_used_is_due(key, now):
                await conn.execute(self.query.last_used_sql, [now, key.pk])
                key.last_used_at = now
        return key


def key_checks() -> KeyChecks:
    """The key checks for this project's database."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        return PostgresKeyChecks(connection)
    return KeyChecks()


# --- The caller, and the SDK's verifier ---------------------------------------------------


@dataclass
class Outcome:
    """What a tool call met, for its audit row (policy.py): the status of Attio's last
    answer and the code of the failure it ended with. Filled in as the tool runs
    (tools/_call.py)."""

    attio_status: int | None = None
    error_code: str = ""

    def saw_answer(self, status: int) -> None:
        self.attio_status = status


@dataclass(frozen=True)
class Caller:
    """Who is calling: the API key, its owner, the Attio connection it acts on and
    whether it may write, as this request's key check read them.

    One per HTTP request, made by the verifier. A stateless POST carries exactly one
    JSON-RPC message (the SDK refuses batches), so `outcome` is that one call's.
    """

    key: ApiKey
    user: AbstractBaseUser
    connection: Connection
    read_only: bool
    outcome: Outcome = field(default_factory=Outcome, compare=False)

    @classmethod
    def of(cls, key: ApiKey) -> "Caller":
        return cls(key=key, user=key.owner, connection=key.connection, read_only=key.read_only)

    @property
    def scopes(self) -> list[str]:
        return ["attio:read"] if self.read_only else ["attio:read", "attio:write"]


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
        # The SDK's auth middleware guarantees a verified key on /mcp.
        raise RuntimeError("no authenticated API key in this request")
    return access.claims["caller"]


class Refusal:
    """Why this request's key was refused, when its holder may be told (KeyRefused):
    http.py makes one per request and, if the answer is a 401, says so in it."""

    description: str | None = None


# The current request's Refusal, set by http.py and filled in by ApiKeyVerifier. The SDK
# calls the verifier with the token alone, so this is the one way back to http.py.
refusal: ContextVar[Refusal | None] = ContextVar("mcp_key_refusal", default=None)


def mcp_url() -> str:
    return f"{settings.PORTAL_BASE_URL}/mcp"


class ApiKeyVerifier:
    """The SDK's TokenVerifier, backed by portal API keys: the key's Caller goes in the
    AccessToken's claims."""

    def __init__(self, key_checks: KeyChecks) -> None:
        self.key_checks = key_checks

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await self.key_checks.check(token)
        except KeyRefused as refused:
            this_request = refusal.get()
            if this_request is not None:
                this_request.description = refused.description
            return None
        if key is None:
            return None
        caller = Caller.of(key)
        return AccessToken(
            token=token,
            client_id=f"api-key:{key.public_id}",
            scopes=caller.scopes,
            expires_at=int(key.expires_at.timestamp()) if key.expires_at else None,
            resource=mcp_url(),
            subject=str(key.owner_id),
            claims={"caller": caller},
        )

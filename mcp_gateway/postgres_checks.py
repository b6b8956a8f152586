"""API key and OAuth token checks on PostgreSQL: the same contract as
auth.CredentialChecks, at less CPU.

Every MCP request checks its key or token against fresh rows (revocation counts from the
next request in every worker), so this is the gateway's hottest database work. Two costs
of the plain ORM path are taken out here (bench/key_check.py, bench/README.md "Key check"):

- compiling the joins and building the rows: ~1.5 ms of CPU per call through
  `select_related(...).first()`, ~0.25 ms as SQL built once (`PrebuiltJoin`) whose rows
  become instances through `Model.from_db` and the ORM's own converters;
- the hop to the ORM's thread and back, whose GIL hand-offs around the socket waits cost
  more than the query: here the query runs in the event loop, on a small psycopg pool of
  the worker's own that opens and closes with the MCP server's lifespan.

A third cost is PostgreSQL's own: the queries are prepared once per pooled connection
(MCP_PREPARED_KEY_CHECKS), where Django's connections plan every query afresh.

tests/mcp_gateway/test_credential_checks.py runs one contract against both implementations
on the same rows.
"""

import contextlib
import logging

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from connections.models import Connection

from . import oauth_server
from .auth import (
    Caller,
    DatabaseUnavailable,
    accept,
    last_used_is_due,
    oauth_caller,
    public_id_of,
    token_is_usable,
)
from .models import ApiKey, ConnectedApp, ToolAccess, ToolPolicy

logger = logging.getLogger(__name__)

# What PostgreSQL answers a prepared statement that no longer fits: a migration changed the
# type of a column it selects ("cached plan must not change result type"), or a pooler in
# between lost the statement or mixed up two connections' statements.
STALE_STATEMENT_ERRORS = (
    psycopg.errors.FeatureNotSupported,
    psycopg.errors.InvalidSqlStatementName,
    psycopg.errors.DuplicatePreparedStatement,
)


class PrebuiltJoin:
    """Rows of several models joined in one SELECT whose SQL is built once.

    The columns come from the models' `_meta`, and values pass through the same database
    converters the ORM applies, so the instances are what the ORM would have returned.
    `parts` are (model, alias), the first one the table selected FROM; `joins` and
    `where` are SQL over those aliases; `extra` are more columns, after the models'.
    """

    def __init__(
        self, connection, parts: list, joins: list[str], where: str, extra: tuple = ()
    ) -> None:
        qn = connection.ops.quote_name
        self.parts = parts
        columns = []
        self.converters = []
        for model, alias in parts:
            for f in model._meta.concrete_fields:
                columns.append(f"{alias}.{qn(f.column)}")
                col = f.get_col(alias)
                funcs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if funcs:
                    self.converters.append((len(columns) - 1, funcs, col))
        self.model_columns = len(columns)
        columns.extend(extra)
        root, root_alias = parts[0]
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {qn(root._meta.db_table)} {root_alias} "
            f"{' '.join(joins)} WHERE {where}"
        )

    def build(self, connection, row) -> list | None:
        """One instance per part from one row of `sql`, then the extra columns' values
        (or None)."""
        if row is None:
            return None
        row = list(row)
        for index, funcs, col in self.converters:
            for convert in funcs:
                row[index] = convert(row[index], col, connection)
        instances: list = []
        start = 0
        for model, _ in self.parts:
            fields = model._meta.concrete_fields
            values = row[start : start + len(fields)]
            instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
            start += len(fields)
        return instances + row[self.model_columns :]


def tool_policies_column(connection, user_alias: str) -> str:
    """A column of the user's tool policies as a JSON array of [name, all_read_tools,
    tools], NULL if none applies (models.ToolPolicyQuerySet.applying_to, in SQL): read
    with the credential, so a policy change counts from the next request at no extra
    query."""
    qn = connection.ops.quote_name
    direct, by_group = ToolPolicy.users.through, ToolPolicy.groups.through
    member = get_user_model().groups.through

    def col(model, alias, field):
        return column(connection, model, alias, field)

    def table(model, alias):
        return f"{qn(model._meta.db_table)} {alias}"

    user_id = column(connection, get_user_model(), user_alias, "id")
    in_group = f"{col(member, 'ug', 'group')} = {col(by_group, 'tpg', 'group')}"
    return (
        f"(SELECT json_agg(json_build_array({col(ToolPolicy, 'tp', 'name')}, "
        f"{col(ToolPolicy, 'tp', 'all_read_tools')}, {col(ToolPolicy, 'tp', 'tools')})) "
        f"FROM {table(ToolPolicy, 'tp')} WHERE {col(ToolPolicy, 'tp', 'id')} IN ("
        f"SELECT {col(direct, 'tpu', 'toolpolicy')} FROM {table(direct, 'tpu')} "
        f"WHERE {col(direct, 'tpu', 'user')} = {user_id}"
        f" UNION SELECT {col(by_group, 'tpg', 'toolpolicy')} FROM {table(by_group, 'tpg')} "
        f"{join(connection, member, 'ug', in_group)} "
        f"WHERE {col(member, 'ug', 'user')} = {user_id}))"
    )


def join(connection, model, alias: str, on: str) -> str:
    return f"JOIN {connection.ops.quote_name(model._meta.db_table)} {alias} ON {on}"


def column(connection, model, alias: str, field: str) -> str:
    return f"{alias}.{connection.ops.quote_name(model._meta.get_field(field).column)}"


class ApiKeyQuery(PrebuiltJoin):
    """The key, its owner and its connection, by public id."""

    def __init__(self, connection) -> None:
        user = get_user_model()

        def col(model, alias, field):
            return column(connection, model, alias, field)

        super().__init__(
            connection,
            parts=[(ApiKey, "k"), (user, "u"), (Connection, "c")],
            joins=[
                join(
                    connection, user, "u", f"{col(user, 'u', 'id')} = {col(ApiKey, 'k', 'owner')}"
                ),
                join(
                    connection,
                    Connection,
                    "c",
                    f"{col(Connection, 'c', 'id')} = {col(ApiKey, 'k', 'connection')}",
                ),
            ],
            where=f"{col(ApiKey, 'k', 'public_id')} = %s",
            extra=(tool_policies_column(connection, "u"),),
        )
        qn = connection.ops.quote_name
        self.last_used_sql = (
            f"UPDATE {qn(ApiKey._meta.db_table)} "
            f"SET {qn(ApiKey._meta.get_field('last_used_at').column)} = %s "
            f"WHERE {qn(ApiKey._meta.pk.column)} = %s"
        )

    def key(self, connection, row) -> ApiKey | None:
        instances = self.build(connection, row)
        if instances is None:
            return None
        key, owner, key_connection, policies = instances
        key.owner, key.connection = owner, key_connection
        owner.tool_access = ToolAccess.of(policies or [])
        return key


class OAuthTokenQuery(PrebuiltJoin):
    """An access token with its connected app (through its refresh token's family), the
    app's user, connection and client, by token checksum; live apps only."""

    def __init__(self, connection) -> None:
        user = get_user_model()

        def col(model, alias, field):
            return column(connection, model, alias, field)

        app = ConnectedApp
        super().__init__(
            connection,
            parts=[
                (AccessToken, "t"),
                (app, "a"),
                (user, "u"),
                (Connection, "c"),
                (Application, "o"),
            ],  # fmt: skip
            joins=[
                join(
                    connection,
                    RefreshToken,
                    "r",
                    f"{col(RefreshToken, 'r', 'access_token')} = {col(AccessToken, 't', 'id')}",
                ),
                join(
                    connection,
                    app,
                    "a",
                    f"{col(app, 'a', 'token_family')} = {col(RefreshToken, 'r', 'token_family')}",
                ),
                join(connection, user, "u", f"{col(user, 'u', 'id')} = {col(app, 'a', 'user')}"),
                join(
                    connection,
                    Connection,
                    "c",
                    f"{col(Connection, 'c', 'id')} = {col(app, 'a', 'connection')}",
                ),
                join(
                    connection,
                    Application,
                    "o",
                    f"{col(Application, 'o', 'id')} = {col(app, 'a', 'client')}",
                ),
            ],
            where=(
                f"{col(AccessToken, 't', 'token_checksum')} = %s "
                f"AND {col(app, 'a', 'revoked_at')} IS NULL"
            ),
            extra=(tool_policies_column(connection, "u"),),
        )
        qn = connection.ops.quote_name
        self.last_used_sql = (
            f"UPDATE {qn(app._meta.db_table)} "
            f"SET {qn(app._meta.get_field('last_used_at').column)} = %s "
            f"WHERE {qn(app._meta.pk.column)} = %s"
        )

    def token_and_app(self, connection, row) -> tuple[AccessToken, ConnectedApp] | None:
        instances = self.build(connection, row)
        if instances is None:
            return None
        token, app, user, app_connection, client, policies = instances
        app.user, app.connection, app.client = user, app_connection, client
        user.tool_access = ToolAccess.of(policies or [])
        return token, app


class PostgresCredentialChecks:
    """auth.CredentialChecks' contract, on a pool of this worker's own, in the event loop."""

    # Each uvicorn worker holds up to this many connections for key checks.
    CONNECTIONS = 4
    # A request waits this long for one of them (all busy, or the database unreachable).
    WAIT_SECONDS = 5
    # How they show in pg_stat_activity.
    APPLICATION_NAME = "attio-portal mcp key checks"

    def __init__(self, connection) -> None:
        """`connection`: the Django connection whose settings the pool connects with."""
        self.connection = connection
        self.query = ApiKeyQuery(connection)
        self.token_query = OAuthTokenQuery(connection)
        self.pool: AsyncConnectionPool | None = None

    @contextlib.asynccontextmanager
    async def running(self):
        params = self.connection.get_connection_params()
        params.pop("cursor_factory", None)  # Django's is for its own synchronous cursors
        params.setdefault("application_name", self.APPLICATION_NAME)
        # Django turns psycopg's prepared statements off (for poolers); here each check
        # would then be planned afresh, ~0.33 ms of PostgreSQL's CPU (bench/README.md).
        params["prepare_threshold"] = 0 if settings.MCP_PREPARED_KEY_CHECKS else None
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
            return None  # malformed or mistyped: no query
        return await self._on_pool(self._check, presented, public_id)

    async def check_oauth_token(self, presented: str) -> tuple[Caller, int] | None:
        if not oauth_server.looks_like_access_token(presented):
            return None
        return await self._on_pool(self._check_oauth_token, presented)

    async def _on_pool(self, check, *args):
        if self.pool is None:
            raise RuntimeError("the MCP server's lifespan is not running (uvicorn --lifespan on)")
        try:
            try:
                return await check(*args)
            except PoolTimeout:
                raise  # no connection to be had: the pool is already trying to make one
            except psycopg.OperationalError:
                # Connections the server closed (a restart, an idle timeout) fail their
                # next query. Have the pool test its idle ones and replace the broken, then
                # try once more: a database that is really away fails that try too.
                await self.pool.check()
                return await check(*args)
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable from e

    @staticmethod
    async def _execute(conn, sql: str, params: list):
        try:
            return await conn.execute(sql, params)
        except STALE_STATEMENT_ERRORS:
            # The statement is prepared again from scratch once; psycopg forgets its own
            # on DEALLOCATE ALL. Failing twice is a pooler that cannot keep them.
            logger.warning(
                "A prepared key check failed on PostgreSQL; preparing it again "
                "(set MCP_PREPARED_KEY_CHECKS=false behind a pooler that drops them)"
            )
            await conn.execute("DEALLOCATE ALL", prepare=False)
            try:
                return await conn.execute(sql, params)
            except STALE_STATEMENT_ERRORS as e:
                raise DatabaseUnavailable from e

    async def _check(self, presented: str, public_id: str) -> ApiKey | None:
        async with self.pool.connection() as conn:
            cursor = await self._execute(conn, self.query.sql, [public_id])
            now = timezone.now()
            key = accept(presented, self.query.key(self.connection, await cursor.fetchone()), now)
            if key is not None and last_used_is_due(key, now):
                await conn.execute(self.query.last_used_sql, [now, key.pk])
                key.last_used_at = now
        return key

    async def _check_oauth_token(self, presented: str) -> tuple[Caller, int] | None:
        async with self.pool.connection() as conn:
            checksum = oauth_server.token_checksum(presented)
            cursor = await self._execute(conn, self.token_query.sql, [checksum])
            now = timezone.now()
            found = self.token_query.token_and_app(self.connection, await cursor.fetchone())
            if found is None:
                return None
            token, app = found
            if not token_is_usable(token, now) or not app.user.is_active:
                return None
            if last_used_is_due(app, now):
                await conn.execute(self.token_query.last_used_sql, [now, app.pk])
                app.last_used_at = now
        return oauth_caller(token, app)

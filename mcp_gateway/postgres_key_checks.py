"""API key checks on PostgreSQL: the same contract as auth.ApiKeyChecks, at less CPU.

Every MCP request checks its key against a fresh row (revocation counts from the next
request in every worker), so this is the gateway's hottest database work. Two costs of
the plain ORM path are taken out here (bench/key_check.py, bench/README.md "Key check"):

- compiling the three-table join and building the rows: ~1.5 ms of CPU per call through
  `select_related(...).first()`, ~0.25 ms as SQL built once (`ApiKeyQuery`) whose rows
  become instances through `Model.from_db` and the ORM's own converters;
- the hop to the ORM's thread and back, whose GIL hand-offs around the socket waits cost
  more than the query: here the query runs in the event loop, on a small psycopg pool of
  the worker's own that opens and closes with the MCP server's lifespan.

tests/mcp_gateway/test_api_key_checks.py runs one contract against both implementations
on the same rows.
"""

import contextlib

import psycopg
from django.contrib.auth import get_user_model
from django.utils import timezone
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from connections.models import Connection

from .auth import DatabaseUnavailable, accept, last_used_is_due, public_id_of
from .models import ApiKey


class ApiKeyQuery:
    """The key, its owner and its connection in one SELECT whose SQL is built once.

    The columns come from the models' `_meta`, and values pass through the same database
    converters the ORM applies, so the instances are what the ORM would have returned.
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


class PostgresApiKeyChecks:
    """auth.ApiKeyChecks' contract, on a pool of this worker's own, in the event loop."""

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
            return None  # malformed or mistyped: no query
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

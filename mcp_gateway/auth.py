"""A presented API key -> its ApiKey row, or None. Nothing else."""

import hmac
import re

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection as db
from django.utils import timezone

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
    instances are what the ORM would have returned.
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

    def fetch(self, connection, public_id: str) -> ApiKey | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [public_id])
            row = cursor.fetchone()
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


_key_queries: dict[str, KeyQuery] = {}


def check_key(presented: str) -> ApiKey | None:
    """authenticate(), for synchronous code: the caller's thread runs the one query."""
    public_id = public_id_of(presented)
    if public_id is None:
        return None
    query = _key_queries.get(db.vendor)
    if query is None:
        query = _key_queries[db.vendor] = KeyQuery(db)
    key = query.fetch(db, public_id)
    # Always a fresh row: revocation, expiry and deactivation count from the next request.
    if key is None or not hmac.compare_digest(key.digest, key_digest(presented)):
        return None
    if not key.is_active(timezone.now()) or not key.owner.is_active:
        return None
    return key


_check_key_in_orm_thread = sync_to_async(check_key)


async def authenticate(presented: str) -> ApiKey | None:
    """The active key (with its owner and connection loaded) or None."""
    if public_id_of(presented) is None:
        return None  # malformed: no thread hop, no query
    return await _check_key_in_orm_thread(presented)

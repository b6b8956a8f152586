"""One contract for both API key checks, run against each on the same rows.

auth.ApiKeyChecks (the ORM, any database) and postgres_key_checks.PostgresApiKeyChecks
(its own pool, PostgreSQL) must answer every presented key alike: the same key with the
same owner and connection loaded, the same refusals, the same last_used_at writes.
"""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from connections.models import Connection
from mcp_gateway import auth, services
from mcp_gateway.models import PREFIX, ApiKey, checksum, random_base62
from mcp_gateway.postgres_key_checks import PostgresApiKeyChecks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def with_checksum(body: str) -> str:
    return body + checksum(body)


def field_values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


@pytest.fixture
def rows(alice, alice_connection, make_user, make_connection, make_key, time_machine):
    """Keys in every state the checks tell apart, and the string each is presented as."""
    time_machine.move_to(timezone.now(), tick=False)
    active, active_plain = make_key(alice_connection)
    read_only, read_only_plain = make_key(alice_connection, read_only=True)
    revoked, revoked_plain = make_key(alice_connection)
    services.revoke_api_key(revoked, by=alice)
    rolled, rolled_plain = make_key(alice_connection)
    services.roll_api_key(rolled, by=alice)
    expiring, expiring_plain = make_key(alice_connection, expires_at=timezone.now() + timedelta(1))
    dora = make_user("dora")
    doras, doras_plain = make_key(make_connection(dora))
    get_user_model().objects.filter(pk=dora.pk).update(is_active=False)
    time_machine.shift(timedelta(days=2))  # past the roll's overlap and the expiry
    return {
        "active": (active_plain, active),
        "read only": (read_only_plain, read_only),
        "revoked": (revoked_plain, Refused(revoked)),
        "rolled": (rolled_plain, Refused(rolled)),
        "expired": (expiring_plain, Refused(expiring)),
        "owner deactivated": (doras_plain, None),
        "wrong secret": (with_checksum(f"{PREFIX}{active.public_id}_{random_base62(43)}"), None),
        "unknown id": (with_checksum(f"{PREFIX}{random_base62(12)}_{random_base62(43)}"), None),
        "bad checksum": (active_plain[:-1] + ("A" if active_plain[-1] != "A" else "B"), None),
        "malformed": ("attp_not-a-key", None),
        "empty": ("", None),
    }


class Refused:
    """What a refusal is expected to carry: the refused key."""

    def __init__(self, key: ApiKey) -> None:
        self.key = key


def answers(key_checks, rows: dict) -> dict:
    """What `key_checks` answers for each presented key: a key, a refusal or None."""

    async def check_all():
        out = {}
        async with key_checks.running():
            for name, (presented, _) in rows.items():
                try:
                    out[name] = await key_checks.check(presented)
                except auth.KeyRefused as refused:
                    out[name] = refused
        return out

    return async_to_sync(check_all)()


@pytest.mark.parametrize("implementation", ["orm", "postgres pool"])
def test_every_state_of_a_key_gets_the_contract_s_answer(implementation, rows):
    checks = auth.ApiKeyChecks() if implementation == "orm" else PostgresApiKeyChecks(connection)
    got = answers(checks, rows)
    for name, (_, expected) in rows.items():
        answer = got[name]
        if expected is None:
            assert answer is None, name
        elif isinstance(expected, Refused):
            assert isinstance(answer, auth.KeyRefused), name
            assert answer.key.pk == expected.key.pk, name
        else:
            assert isinstance(answer, ApiKey) and answer.pk == expected.pk, name
            fresh = ApiKey.objects.select_related("owner", "connection").get(pk=expected.pk)
            # Everything the ORM would have loaded, owner and connection included, with
            # the same Python types (datetimes, encrypted columns, booleans).
            assert field_values(answer) == field_values(fresh), name
            assert field_values(answer.owner) == field_values(fresh.owner), name
            assert isinstance(answer.connection, Connection)
            assert field_values(answer.connection) == field_values(fresh.connection), name
            assert answer.last_used_at is not None  # the first use writes it


def test_both_implementations_answer_the_same_rows_alike(rows):
    orm = answers(auth.ApiKeyChecks(), rows)
    ApiKey.objects.update(last_used_at=None)  # each starts from the same rows
    pool = answers(PostgresApiKeyChecks(connection), rows)

    def summary(answer):
        if isinstance(answer, auth.KeyRefused):
            return ("refused", answer.key.pk, answer.description)
        if isinstance(answer, ApiKey):
            return (
                "accepted",
                {**field_values(answer), "last_used_at": None},
                field_values(answer.owner),
                field_values(answer.connection),
            )
        return answer

    assert {n: summary(a) for n, a in orm.items()} == {n: summary(a) for n, a in pool.items()}


@pytest.mark.parametrize("implementation", ["orm", "postgres pool"])
def test_last_used_at_is_written_on_first_use_then_at_most_once_a_minute(
    implementation, alice_key, time_machine
):
    key, plaintext = alice_key
    checks = auth.ApiKeyChecks() if implementation == "orm" else PostgresApiKeyChecks(connection)

    async def check_twice():
        async with checks.running():
            first = await checks.check(plaintext)
            second = await checks.check(plaintext)
            return first, second

    time_machine.move_to(timezone.now(), tick=False)
    started = timezone.now()
    first, second = async_to_sync(check_twice)()
    assert first.last_used_at == started == ApiKey.objects.get().last_used_at
    assert second.last_used_at == started

    time_machine.shift(timedelta(seconds=auth.LAST_USED_RESOLUTION - 1))
    async_to_sync(check_twice)()
    assert ApiKey.objects.get().last_used_at == started  # not yet due

    time_machine.shift(timedelta(seconds=1))
    async_to_sync(check_twice)()
    assert ApiKey.objects.get().last_used_at == started + timedelta(
        seconds=auth.LAST_USED_RESOLUTION
    )

"""One contract for both credential checks, run against each on the same rows.

auth.CredentialChecks (the ORM, any database) and postgres_checks.PostgresCredentialChecks
(its own pool, PostgreSQL) must answer every presented API key and OAuth access token
alike: the same key with the same owner and connection loaded, the same caller for a
token, the same refusals, the same last_used_at writes.
"""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value

from connections.models import Connection
from mcp_gateway import auth, oauth_server, services
from mcp_gateway.models import PREFIX, ApiKey, ConnectedApp, checksum, random_base62
from mcp_gateway.postgres_checks import PostgresCredentialChecks

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
    checks = (
        auth.CredentialChecks() if implementation == "orm" else PostgresCredentialChecks(connection)
    )
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
    orm = answers(auth.CredentialChecks(), rows)
    ApiKey.objects.update(last_used_at=None)  # each starts from the same rows
    pool = answers(PostgresCredentialChecks(connection), rows)

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
    checks = (
        auth.CredentialChecks() if implementation == "orm" else PostgresCredentialChecks(connection)
    )

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


# --- OAuth access tokens ----------------------------------------------------------------


def issue_token(app: ConnectedApp | None, client, user, *, scope="attio.read", **fields) -> str:
    """An access token as the authorization server leaves it: hashed, its refresh token
    in the app's family (none for a registration token, `app` None)."""
    plaintext = oauth_server.new_access_token(None)
    token = AccessToken(
        user=user,
        application=client,
        scope=scope,
        expires=fields.pop("expires", timezone.now() + timedelta(hours=1)),
        resource=fields.pop("resource", [oauth_server.mcp_url()]),
    )
    set_token_value(token, plaintext)
    token.save()
    if app is not None:
        refresh = RefreshToken(
            user=user, application=client, access_token=token, token_family=app.token_family
        )
        set_token_value(refresh, oauth_server.new_refresh_token(None))
        refresh.save()
    return plaintext


@pytest.fixture
def token_rows(alice, alice_connection, make_user, make_connection, time_machine):
    """Tokens in every state the checks tell apart, and what each should give."""
    time_machine.move_to(timezone.now(), tick=False)
    client = Application.objects.create(
        name="Claude", client_type="public", authorization_grant_type="authorization-code",
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
    )  # fmt: skip

    def app_for(user, connection, **fields):
        return ConnectedApp.objects.create(
            user=user, client=client, connection=connection, token_family=uuid.uuid4(),
            code_checksum=uuid.uuid4().hex, **fields,
        )  # fmt: skip

    reader = app_for(alice, alice_connection)
    writer = app_for(alice, alice_connection, read_only=False)
    revoked = app_for(alice, alice_connection, revoked_at=timezone.now())
    dora = make_user("dora")
    doras = app_for(dora, make_connection(dora))
    doras_token = issue_token(doras, client, dora)
    get_user_model().objects.filter(pk=dora.pk).update(is_active=False)
    everything = "attio.read attio.write"
    return {
        "read only": (issue_token(reader, client, alice), (reader.pk, True)),
        "read write": (issue_token(writer, client, alice, scope=everything), (writer.pk, False)),
        # A refresh that asked for less: the token, not the app, decides.
        "narrowed": (issue_token(writer, client, alice), (writer.pk, True)),
        "expired": (issue_token(reader, client, alice, expires=timezone.now()), None),
        "other resource": (
            issue_token(reader, client, alice, resource=["https://elsewhere.example/mcp"]),
            None,
        ),
        "no resource": (issue_token(reader, client, alice, resource=[]), None),
        "app revoked": (issue_token(revoked, client, alice), None),
        "user deactivated": (doras_token, None),
        "registration token": (issue_token(None, client, alice), None),
        "unknown": (oauth_server.new_access_token(None), None),
        "malformed": ("atpo_at_short", None),
    }


def token_answers(checks, rows: dict) -> dict:
    async def check_all():
        async with checks.running():
            return {name: await checks.check_oauth_token(t) for name, (t, _) in rows.items()}

    return async_to_sync(check_all)()


@pytest.mark.parametrize("implementation", ["orm", "postgres pool"])
def test_every_state_of_an_oauth_token_gets_the_contract_s_answer(implementation, token_rows):
    checks = (
        auth.CredentialChecks() if implementation == "orm" else PostgresCredentialChecks(connection)
    )
    got = token_answers(checks, token_rows)
    for name, (_, expected) in token_rows.items():
        answer = got[name]
        if expected is None:
            assert answer is None, name
            continue
        caller, expires_at = answer
        app_pk, read_only = expected
        assert caller.app.pk == app_pk and caller.read_only is read_only, name
        assert caller.key is None and caller.user.username == "alice", name
        assert caller.connection.workspace_name == "Acme", name
        assert caller.app.client.name == "Claude", name  # the client is loaded too
        assert expires_at == int((timezone.now() + timedelta(hours=1)).timestamp()), name
    assert ConnectedApp.objects.get(pk=token_rows["read only"][1][0]).last_used_at is not None


def test_both_implementations_answer_the_same_tokens_alike(token_rows):
    def summary(answer):
        if answer is None:
            return None
        caller, expires_at = answer
        return (
            {**field_values(caller.app), "last_used_at": None},
            field_values(caller.user),
            field_values(caller.connection),
            field_values(caller.app.client),
            caller.read_only,
            expires_at,
        )

    orm = token_answers(auth.CredentialChecks(), token_rows)
    pool = token_answers(PostgresCredentialChecks(connection), token_rows)
    assert {n: summary(a) for n, a in orm.items()} == {n: summary(a) for n, a in pool.items()}


def on_one_pooled_connection(key_checks, *steps):
    """Run `steps` (async callables given the running checks) with the pool held to one
    connection; answer what each answered."""
    key_checks.CONNECTIONS = 1

    async def go():
        async with key_checks.running():
            return [await step(key_checks) for step in steps]

    return async_to_sync(go)()


def check(presented: str):
    async def step(key_checks):
        try:
            return await key_checks.check(presented)
        except auth.KeyRefused as refused:
            return refused

    return step


async def prepared_statements(key_checks) -> list[str]:
    async with key_checks.pool.connection() as conn:
        cursor = await conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
        return [row[0] for row in await cursor.fetchall()]


def test_the_pool_prepares_its_key_query_and_a_revocation_still_counts_at_once(alice_key, settings):
    settings.MCP_PREPARED_KEY_CHECKS = True
    key, plaintext = alice_key
    checks = PostgresCredentialChecks(connection)

    async def revoke(_):
        await ApiKey.objects.filter(pk=key.pk).aupdate(revoked_at=timezone.now())

    first, prepared, *more, _, after = on_one_pooled_connection(
        checks,
        check(plaintext),
        prepared_statements,
        *[check(plaintext)] * 4,
        revoke,
        check(plaintext),
    )

    # Prepared from the first check on (psycopg's own default waits for the sixth); the
    # other statement is that check's last_used_at write.
    key_query = checks.query.sql.strip().partition("%s")[0]
    assert [s for s in prepared if s.strip().startswith(key_query)] != []
    assert all(isinstance(k, ApiKey) and k.pk == key.pk for k in [first, *more])
    assert isinstance(after, auth.KeyRefused) and after.key.pk == key.pk


def test_prepared_key_checks_can_be_turned_off_for_a_pooler(alice_key, settings):
    settings.MCP_PREPARED_KEY_CHECKS = False
    key, plaintext = alice_key
    checks = PostgresCredentialChecks(connection)

    *answers, prepared = on_one_pooled_connection(
        checks, *[check(plaintext)] * 6, prepared_statements
    )

    assert all(k.pk == key.pk for k in answers)
    assert prepared == []


def test_a_prepared_check_outdated_by_a_migration_is_prepared_again(alice_key, settings, caplog):
    # A column the key query selects changes type while the worker runs (a deploy's
    # migration): PostgreSQL refuses the prepared statement ("cached plan must not change
    # result type") until it is prepared again.
    settings.MCP_PREPARED_KEY_CHECKS = True
    key, plaintext = alice_key
    checks = PostgresCredentialChecks(connection)
    table = ApiKey._meta.db_table

    def alter(length: int):
        async def step(_):
            def run():
                with connection.cursor() as cursor:
                    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar({length})")

            await sync_to_async(run)()

        return step

    try:
        before, _, after = on_one_pooled_connection(
            checks, check(plaintext), alter(101), check(plaintext)
        )
    finally:
        async_to_sync(alter(100))(None)

    assert before.pk == key.pk and after.pk == key.pk
    assert "preparing it again" in caplog.text

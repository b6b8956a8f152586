"""Portal API keys: format, storage, the portal pages, admin, command and revocation."""

import re
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mcp_gateway import auth, services
from mcp_gateway.models import PREFIX, ApiKey, ApiKeyEvent, checksum, random_base62
from mcp_gateway.postgres_checks import PostgresCredentialChecks

from ..faults.harness import free_port
from ..threads import run_together
from .test_endpoint import INITIALIZE, JSON

KEY_REGEX = re.compile(r"^attp_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$")


def test_issued_key_matches_the_documented_format(alice_key):
    key, plaintext = alice_key
    assert KEY_REGEX.fullmatch(plaintext)
    assert auth.public_id_of(plaintext) == key.public_id
    assert plaintext.startswith(f"{PREFIX}{key.public_id}_")


def test_checksum_catches_any_single_character_change(alice_key):
    _, plaintext = alice_key
    for position in range(len(PREFIX), len(plaintext)):
        for replacement in "0aZ":
            if plaintext[position] == replacement or plaintext[position] == "_":
                continue
            mangled = plaintext[:position] + replacement + plaintext[position + 1 :]
            assert auth.public_id_of(mangled) is None, position


def test_secrets_carry_256_bits_and_never_repeat():
    # 43 characters from 62 symbols: log2(62**43) > 256.
    assert 62**43 > 2**256
    bodies = {f"{PREFIX}{random_base62(12)}_{random_base62(43)}" for _ in range(100_000)}
    assert len(bodies) == 100_000
    assert all(len(checksum(b)) == 6 for b in list(bodies)[:100])


def test_only_id_digest_and_last_four_are_stored(alice_key):
    key, plaintext = alice_key
    out = StringIO()
    call_command("dumpdata", "mcp_gateway", stdout=out)
    dump = out.getvalue()
    assert plaintext not in dump
    secret_part = plaintext.split("_", 2)[2]
    assert secret_part[:20] not in dump
    assert key.public_id in dump and key.digest in dump
    assert plaintext not in str(key) and plaintext not in repr(key)


@pytest.mark.parametrize("checks", ["orm-thread", "own-pool"])
def test_malformed_key_is_rejected_without_a_database_query(checks, db, django_assert_num_queries):
    # The PostgreSQL checks are not running (no pool): a query would raise.
    if checks == "orm-thread":
        key_checks = auth.CredentialChecks()
    else:
        key_checks = PostgresCredentialChecks(connection)
    with django_assert_num_queries(0):
        assert async_to_sync(key_checks.check)("attp_" + "x" * 62) is None
        assert async_to_sync(key_checks.check)("not a key") is None


@pytest.fixture(params=["orm-thread", "postgres"])
def key_checks(request, monkeypatch):
    """Each way the gateway checks keys: through the ORM's connection in its thread (any
    database), and on a pool of its own in the event loop (PostgreSQL, as in production).
    The second is skipped on SQLite, like every test marked `postgres`."""
    if request.param == "orm-thread":
        monkeypatch.setattr(auth, "credential_checks", auth.CredentialChecks)
    else:
        assert isinstance(auth.credential_checks(), PostgresCredentialChecks)
    return request.param


@pytest.fixture
def unauthorized(raw):
    """The gateway's 401 for a request with `presented` as its key."""

    def answer(presented):
        headers = {**JSON, "Authorization": f"Bearer {presented}"}
        response = raw("POST", "/mcp", json=INITIALIZE, headers=headers)
        assert response.status_code == 401
        return response

    return answer


def made_up_key() -> str:
    body = f"{PREFIX}{random_base62(12)}_{random_base62(43)}"
    return body + checksum(body)


def wrong_secret_for(key: ApiKey) -> str:
    body = f"{PREFIX}{key.public_id}_{random_base62(43)}"
    return body + checksum(body)


def whole(response) -> tuple:
    return response.status_code, tuple(response.headers.items()), response.content


GENERIC = "Authentication required"


def explanation(response, generic) -> str:
    """The error_description of a 401 that says why, once it is seen to be shaped exactly
    like the generic 401: the same status, headers and fields, only the words differ."""
    assert response.status_code == 401
    description = response.json()["error_description"]
    assert description != GENERIC
    assert response.json() == {**generic.json(), "error_description": description}
    assert [name for name, _ in response.headers.items()] == [
        name for name, _ in generic.headers.items()
    ]
    assert response.headers["www-authenticate"] == generic.headers["www-authenticate"].replace(
        f'error_description="{GENERIC}"', f'error_description="{description}"'
    )
    assert int(response.headers["content-length"]) == len(response.content)
    assert description.isascii() and '"' not in description and "\\" not in description
    return description


def test_made_up_wrong_secret_and_malformed_keys_get_the_same_generic_401(
    key_checks, alice, alice_connection, make_key, unauthorized, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    active, _ = make_key(alice_connection)
    revoked, _ = make_key(alice_connection)
    services.revoke_api_key(revoked, by=alice)
    expired, _ = make_key(alice_connection, expires_at=timezone.now() + timedelta(hours=1))
    rolled, _ = make_key(alice_connection)
    services.roll_api_key(rolled, by=alice)
    time_machine.shift(timedelta(hours=25))
    generic = unauthorized(made_up_key())
    assert generic.json() == {"error": "invalid_token", "error_description": GENERIC}
    # A wrong secret for a revoked, expired or rolled key's id says nothing more than
    # one for a live key's: only the key's holder learns why it stopped working.
    presented = [
        made_up_key(),
        "attp_malformed",
        wrong_secret_for(active),
        wrong_secret_for(revoked),
        wrong_secret_for(expired),
        wrong_secret_for(rolled),
    ]
    assert {whole(unauthorized(key)) for key in presented} == {whole(generic)}


def test_a_revoked_key_s_401_says_it_was_revoked_and_where_to_get_another(
    key_checks, alice_key, alice, unauthorized, settings
):
    key, plaintext = alice_key
    generic = unauthorized(made_up_key())
    services.revoke_api_key(key, by=alice, reason="lost laptop")

    description = explanation(unauthorized(plaintext), generic)
    assert description == (
        "This API key was revoked. Create a new one on the portal dashboard: "
        f"{settings.PORTAL_BASE_URL}/"
    )
    assert "lost laptop" not in description  # the admin's note stays in the portal


def test_an_expired_key_s_401_says_when_it_expired(
    key_checks, alice_connection, make_key, unauthorized, settings, time_machine
):
    time_machine.move_to(datetime(2030, 5, 1, 12, 0, tzinfo=UTC), tick=False)
    _, plaintext = make_key(alice_connection, expires_at=timezone.now() + timedelta(days=1))
    generic = unauthorized(made_up_key())
    time_machine.shift(timedelta(days=1, seconds=1))

    assert explanation(unauthorized(plaintext), generic) == (
        "This API key expired at 2030-05-02 12:00 UTC. Create a new one on the portal "
        f"dashboard: {settings.PORTAL_BASE_URL}/"
    )


def test_a_rolled_key_s_401_after_the_overlap_says_it_was_replaced(
    key_checks, alice_key, alice, unauthorized, settings, time_machine
):
    time_machine.move_to(datetime(2030, 5, 1, 12, 0, tzinfo=UTC), tick=False)
    key, plaintext = alice_key
    services.roll_api_key(key, by=alice)
    generic = unauthorized(made_up_key())
    time_machine.shift(timedelta(hours=24, seconds=1))

    assert explanation(unauthorized(plaintext), generic) == (
        "This API key was rolled: it was replaced by a new key and stopped working at "
        "2030-05-02 12:00 UTC. Use the new key, or create one on the portal dashboard: "
        f"{settings.PORTAL_BASE_URL}/"
    )


def test_a_deactivated_users_key_gets_the_generic_401(
    key_checks, alice_key, alice, staff, unauthorized
):
    # Revoked along with its owner, who has no dashboard left to get a new key from.
    from attio_portal.accounts import deactivate_user

    _, plaintext = alice_key
    generic = unauthorized(made_up_key())
    deactivate_user(alice, by=staff)
    assert whole(unauthorized(plaintext)) == whole(generic)


def test_revoked_key_fails_on_the_very_next_request(key_checks, mcp, alice_key, alice, raw):
    key, plaintext = alice_key
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 200
    services.revoke_api_key(key, by=alice, reason="lost laptop")
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 401
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.REVOKED)
    assert event.reason == "lost laptop" and event.detail["api_key"] == key.public_id


def test_expired_key_fails(key_checks, alice_connection, make_key, raw, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    _, plaintext = make_key(alice_connection, expires_at=timezone.now() + timedelta(days=1))
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 200
    time_machine.shift(timedelta(days=1, seconds=1))
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 401


def test_inactive_owner_key_fails_and_deactivation_revokes_keys(
    key_checks, alice_key, alice, staff, raw
):
    key, plaintext = alice_key
    from attio_portal.accounts import deactivate_user

    deactivate_user(alice, by=staff)
    key.refresh_from_db()
    assert key.revoked_at is not None
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 401


def test_last_used_is_written_at_most_once_a_minute(key_checks, alice_key, raw, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    key, plaintext = alice_key
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    raw("POST", "/mcp", json=INITIALIZE, headers=headers)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    time_machine.shift(30)
    raw("POST", "/mcp", json=INITIALIZE, headers=headers)
    key.refresh_from_db()
    assert key.last_used_at == first
    time_machine.shift(31)
    raw("POST", "/mcp", json=INITIALIZE, headers=headers)
    key.refresh_from_db()
    assert key.last_used_at > first


@pytest.mark.postgres
def test_on_postgresql_a_request_makes_no_query_on_the_orm_connection(
    alice_key, raw, django_assert_num_queries
):
    _, plaintext = alice_key
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    # The key check, and the first use's last_used_at, go through the gateway's own pool.
    with django_assert_num_queries(0):
        assert raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code == 200
    assert ApiKey.objects.get().last_used_at is not None


def terminate_key_check_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [PostgresCredentialChecks.APPLICATION_NAME],
        )
        return len(cursor.fetchall())


@pytest.mark.postgres
def test_a_key_check_connection_closed_by_the_server_is_replaced(alice_key, mcp):
    _, plaintext = alice_key

    async def body(client):
        first = await client.call_tool("whoami", {})
        terminated = await sync_to_async(terminate_key_check_connections)()
        # Its socket is now closed by the server; the next request still gets through.
        second = await client.call_tool("whoami", {})
        return first, terminated, second

    first, terminated, second = mcp(plaintext, body)
    assert not first.is_error and terminated >= 1
    assert not second.is_error and second.structured_content["workspace_name"] == "Acme"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the pool's connections see committed rows only
def test_a_refused_key_leaves_its_pool_connection_in_use(alice, alice_connection, make_key):
    revoked, revoked_plaintext = make_key(alice_connection)
    services.revoke_api_key(revoked, by=alice)
    active, plaintext = make_key(alice_connection)
    key_checks = PostgresCredentialChecks(connection)

    async def check():
        async with key_checks.running():
            assert await key_checks.check(plaintext) == active  # the pool is filled now
            key_checks.pool.pop_stats()
            for _ in range(2 * PostgresCredentialChecks.CONNECTIONS):
                with pytest.raises(auth.KeyRefused):
                    await key_checks.check(revoked_plaintext)
            assert await key_checks.check(plaintext) == active
            return key_checks.pool.pop_stats()

    stats = async_to_sync(check)()
    # Each refusal gave its connection back in good order: none was replaced.
    assert stats["requests_num"] == 2 * PostgresCredentialChecks.CONNECTIONS + 1
    assert stats.get("connections_num", 0) == 0 and stats.get("returns_bad", 0) == 0


def unreachable_key_checks() -> PostgresCredentialChecks:
    """Key checks on a database address where nothing listens."""
    unreachable = connection.copy()
    unreachable.settings_dict = {**connection.settings_dict, "PORT": str(free_port())}
    return PostgresCredentialChecks(unreachable)


@pytest.mark.postgres
def test_while_the_database_is_unreachable_a_key_check_fails_after_a_bounded_wait(
    alice_key, monkeypatch
):
    _, plaintext = alice_key
    monkeypatch.setattr(PostgresCredentialChecks, "WAIT_SECONDS", 1)
    key_checks = unreachable_key_checks()

    async def check():
        async with key_checks.running():
            started = time.monotonic()
            with pytest.raises(auth.DatabaseUnavailable):
                await key_checks.check(plaintext)
            return time.monotonic() - started

    waited = async_to_sync(check)()
    assert 1 <= waited < 2  # WAIT_SECONDS, once: no second try without a connection


@pytest.mark.postgres
def test_while_the_database_is_unreachable_mcp_answers_503(alice_key, raw, monkeypatch, caplog):
    _, plaintext = alice_key
    monkeypatch.setattr(PostgresCredentialChecks, "WAIT_SECONDS", 1)
    monkeypatch.setattr(auth, "credential_checks", unreachable_key_checks)
    headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
    response = raw("POST", "/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 503 and response.headers["retry-after"] == "10"
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Answered 503" in caplog.text
    assert plaintext not in response.text + caplog.text


# --- portal pages -----------------------------------------------------------------------


def test_create_key_shows_it_once_with_client_setup(client, alice, alice_connection):
    client.force_login(alice)
    response = client.post(
        reverse("mcp_gateway:key-create"),
        {
            "name": "Claude Code",
            "connection": alice_connection.pk,
            "access": "read_only",
            "expires": "30",
            "nonce": "form-1",
        },
    )
    assert response.status_code == 200
    plaintext = re.search(r'<code class="secret" id="key">([^<]+)</code>', response.text).group(1)
    assert KEY_REGEX.fullmatch(plaintext)
    assert "no-store" in response["Cache-Control"]
    assert (
        f"claude mcp add --transport http attio http://127.0.0.1:8000/mcp "
        f'--header "Authorization: Bearer {plaintext}"' in response.text.replace("&quot;", '"')
    )
    assert "mcp-remote" in response.text
    # Pinned to the Inspector that takes these arguments on Node.js 20 (see views.py).
    assert (
        "npx @modelcontextprotocol/inspector@1.0.3 --cli http://127.0.0.1:8000/mcp "
        f'--transport http --header "Authorization: Bearer {plaintext}" --method tools/list'
        in response.text.replace("&quot;", '"')
    )
    assert 'MCP Inspector <span class="muted">(needs Node.js 20 or later)</span>' in response.text
    key = ApiKey.objects.get()
    assert key.read_only and key.expires_at > timezone.now() + timedelta(days=29)
    assert ApiKeyEvent.objects.filter(kind=ApiKeyEvent.Kind.CREATED).count() == 1
    # Never again: not on the dashboard, nowhere.
    dashboard = client.get(reverse("dashboard"))
    assert "Claude Code" in dashboard.text
    assert plaintext not in dashboard.text
    assert key.display_id in dashboard.text


def test_cannot_create_a_key_for_another_users_connection(client, charlie, alice_connection):
    client.force_login(charlie)
    response = client.post(
        reverse("mcp_gateway:key-create"),
        {"name": "x", "connection": alice_connection.pk, "access": "read_write", "expires": "30"},
    )
    # Charlie has no connection: sent to connect one first; nothing created.
    assert response.status_code == 302
    assert not ApiKey.objects.exists()
    with pytest.raises(services.ApiKeyError):
        services.create_api_key(charlie, connection=alice_connection, name="x")


def test_key_form_offers_only_own_connections(client, alice, alice_connection, bob_connection):
    client.force_login(alice)
    page = client.get(reverse("mcp_gateway:key-create"))
    assert f'value="{alice_connection.pk}"' in page.text
    assert f'value="{bob_connection.pk}"' not in page.text


def test_user_revokes_own_key_but_not_others(client, alice, bob, alice_key):
    key, _ = alice_key
    client.force_login(bob)
    assert client.post(reverse("mcp_gateway:key-revoke", args=[key.pk])).status_code == 404
    client.force_login(alice)
    page = client.get(reverse("mcp_gateway:key-revoke", args=[key.pk]))
    assert "Revoke “test key”?" in page.text
    client.post(reverse("mcp_gateway:key-revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- admin and command ------------------------------------------------------------------


def test_admin_lists_keys_without_secrets_and_revokes_with_reason(client, staff, alice_key):
    key, plaintext = alice_key
    client.force_login(staff)
    listing = client.get(reverse("admin:mcp_gateway_apikey_changelist"))
    assert key.name in listing.text and plaintext not in listing.text
    change = client.get(reverse("admin:mcp_gateway_apikey_change", args=[key.pk]))
    assert plaintext not in change.text and key.digest not in change.text
    assert 'name="_save"' not in change.text  # nothing on a key's page can be saved
    url = reverse("admin:mcp_gateway_apikey_changelist")
    form = {"action": "revoke_selected", "_selected_action": [key.pk]}
    assert "Reason" in client.post(url, form).text
    done = client.post(url, {**form, "apply": "1", "reason": "left the company"}, follow=True)
    assert "Revoked 1 API key." in done.text
    key.refresh_from_db()
    assert key.revoked_reason == "left the company"
    assert ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.REVOKED).actor == staff


def test_create_api_key_command_prints_the_key_once(alice_connection):
    out = StringIO()
    call_command(
        "create_api_key", "--user", "alice@example.com", "--read-only", "--name", "ci", stdout=out
    )
    plaintext = out.getvalue().strip()
    assert KEY_REGEX.fullmatch(plaintext)
    key = ApiKey.objects.get()
    assert key.read_only and key.name == "ci" and key.connection == alice_connection
    assert key.tool_profile == "full"


def test_create_api_key_command_makes_compact_keys(alice_connection):
    call_command("create_api_key", "--user", "alice", "--compact", stdout=StringIO())
    assert ApiKey.objects.get().tool_profile == "compact"


def test_create_api_key_command_needs_a_connection_choice(alice, make_connection):
    make_connection(alice, "acme")
    make_connection(alice, "globex")
    with pytest.raises(CommandError, match="several connections"):
        call_command("create_api_key", "--user", "alice")
    with pytest.raises(CommandError, match="No single user"):
        call_command("create_api_key", "--user", "nobody@example.com")


def test_resubmitting_the_creation_form_creates_no_second_key(client, alice, alice_connection):
    client.force_login(alice)
    form = {
        "name": "CLI",
        "connection": alice_connection.pk,
        "access": "read_write",
        "expires": "never",
        "nonce": "same-form",
    }
    first = client.post(reverse("mcp_gateway:key-create"), form)
    assert first.status_code == 200
    again = client.post(reverse("mcp_gateway:key-create"), form, follow=True)
    assert ApiKey.objects.count() == 1
    assert "already created" in again.text
    plaintext = re.search(r'<code class="secret" id="key">([^<]+)</code>', first.text).group(1)
    assert plaintext not in again.text


def test_rolling_a_key_overlaps_then_retires_the_old_one(
    client, alice, alice_key, raw, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    old, old_plaintext = alice_key
    client.force_login(alice)
    response = client.post(reverse("mcp_gateway:key-roll", args=[old.pk]))
    new_plaintext = re.search(r'<code class="secret" id="key">([^<]+)</code>', response.text)[1]
    assert new_plaintext != old_plaintext
    assert "keeps working until" in response.text

    def status(plaintext):
        headers = {**JSON, "Authorization": f"Bearer {plaintext}"}
        return raw("POST", "/mcp", json=INITIALIZE, headers=headers).status_code

    # The successor works at once; the predecessor until the overlap ends.
    assert status(new_plaintext) == 200
    assert status(old_plaintext) == 200
    time_machine.shift(timedelta(hours=24, seconds=1))
    assert status(old_plaintext) == 401
    assert status(new_plaintext) == 200
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.ROLLED)
    assert event.detail["api_key"] == old.public_id
    new = ApiKey.objects.exclude(pk=old.pk).get()
    assert (new.name, new.read_only, new.connection) == (old.name, old.read_only, old.connection)
    old.refresh_from_db()
    assert old.replaced_by == new


def test_the_dashboard_shows_a_rolled_key_as_replaced(client, alice, alice_key):
    old, _ = alice_key
    client.force_login(alice)
    client.post(reverse("mcp_gateway:key-roll", args=[old.pk]))
    new = ApiKey.objects.exclude(pk=old.pk).get()
    page = client.get(reverse("dashboard")).text
    assert f"replaced by “{new.name}” <code>{new.display_id}</code>" in page
    # One Roll button: the successor's.
    assert page.count(reverse("mcp_gateway:key-roll", args=[new.pk])) == 1
    assert reverse("mcp_gateway:key-roll", args=[old.pk]) not in page


def test_rolling_keeps_an_earlier_expiry(alice, alice_connection, make_key):
    soon = timezone.now() + timedelta(hours=2)
    key, _ = make_key(alice_connection, expires_at=soon)
    successor, _ = services.roll_api_key(key, by=alice)
    key.refresh_from_db()
    assert key.expires_at == soon and successor.expires_at == soon
    assert key.replaced_by == successor
    event = ApiKeyEvent.objects.get(kind=ApiKeyEvent.Kind.ROLLED)
    assert event.detail["old_key_expires_at"] == soon.isoformat()


def test_a_revoked_key_cannot_be_rolled(client, alice, alice_key):
    key, _ = alice_key
    services.revoke_api_key(key, by=alice)
    client.force_login(alice)
    response = client.post(reverse("mcp_gateway:key-roll", args=[key.pk]), follow=True)
    assert "Only an active key can be rolled" in response.text
    assert ApiKey.objects.count() == 1


def test_a_key_revoked_after_the_page_loaded_it_is_not_rolled(alice, alice_key):
    key, _ = alice_key
    services.revoke_api_key(ApiKey.objects.get(pk=key.pk), by=alice)
    with pytest.raises(services.ApiKeyError, match="Only an active key"):
        services.roll_api_key(key, by=alice)  # `key` still says it is active
    assert ApiKey.objects.count() == 1


def test_a_key_is_rolled_once(client, alice, alice_key):
    key, _ = alice_key
    client.force_login(alice)
    assert client.post(reverse("mcp_gateway:key-roll", args=[key.pk])).status_code == 200
    again = client.post(reverse("mcp_gateway:key-roll", args=[key.pk]), follow=True)
    assert "was rolled already" in again.text
    assert "Roll its successor instead" in again.text
    assert ApiKey.objects.count() == 2


def test_a_roll_that_fails_midway_changes_nothing(alice, alice_key, monkeypatch):
    key, plaintext = alice_key
    record_key_event = services.record_key_event

    def failing_on_roll(kind, key, **detail):
        if kind == ApiKeyEvent.Kind.ROLLED:
            raise RuntimeError("the database went away")
        return record_key_event(kind, key, **detail)

    monkeypatch.setattr(services, "record_key_event", failing_on_roll)
    with pytest.raises(RuntimeError):
        services.roll_api_key(key, by=alice)
    # No successor (nor its creation event), and the old key's expiry untouched.
    assert list(ApiKey.objects.all()) == [key]
    assert ApiKey.objects.get().expires_at is None
    assert not ApiKeyEvent.objects.filter(kind=ApiKeyEvent.Kind.CREATED).exclude(
        detail__api_key=key.public_id
    )
    assert auth.check_api_key(plaintext) is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_rolls_of_one_key_at_once_make_one_successor(alice, alice_key, monkeypatch):
    key, _ = alice_key
    create_api_key = services.create_api_key

    def slow_create(*args, **kwargs):
        created = create_api_key(*args, **kwargs)
        time.sleep(0.3)  # both rolls are past their checks by now, unless one waits
        return created

    monkeypatch.setattr(services, "create_api_key", slow_create)
    results = run_together(2, lambda _: services.roll_api_key(key, by=alice))
    refused = [r for r in results if isinstance(r, services.ApiKeyError)]
    assert len(refused) == 1, results
    assert "was rolled already" in str(refused[0])
    assert ApiKey.objects.count() == 2
    assert ApiKeyEvent.objects.filter(kind=ApiKeyEvent.Kind.ROLLED).count() == 1

"""Sealed tokens at rest: AES-256-GCM bound to row and field, tamper-evident,
random nonces, a strict key ring, and online key rotation."""

import base64
import io
from unittest import mock

import pytest
from django.core.management import call_command

from connections import attio, services
from connections.crypto import (
    NONCE_BYTES,
    DecryptionError,
    Key,
    KeyConfigError,
    KeyRing,
    generate_key_entry,
    parse_key,
)
from connections.management.commands import reencrypt_tokens
from connections.models import Connection, PendingRevocation

K1 = generate_key_entry("k1")
K2 = generate_key_entry("k2")
TAG_BYTES = 16


def ring(*entries: str) -> KeyRing:
    return KeyRing.from_entries(list(entries))


def raw_of(sealed: str) -> tuple[str, bytes]:
    key_id, _, encoded = sealed.partition("$")
    return key_id, base64.urlsafe_b64decode(encoded)


def sealed_from(key_id: str, raw: bytes) -> str:
    return f"{key_id}${base64.urlsafe_b64encode(raw).decode()}"


# --- Binding to row and field -------------------------------------------------


def test_ciphertext_copied_into_another_users_row_does_not_open(
    alice, alice_connection, bob, make_connection
):
    bobs = make_connection(bob, "acme")
    alices_token = alice_connection.access_token()
    bobs_token = bobs.access_token()

    Connection.objects.filter(pk=bobs.pk).update(
        access_token_sealed=alice_connection.access_token_sealed
    )
    bobs.refresh_from_db()

    with pytest.raises(DecryptionError):
        bobs.access_token()
    assert not bobs.access_token_sealed.endswith(alices_token)
    assert alices_token != bobs_token
    # Alice's own row still opens.
    alice_connection.refresh_from_db()
    assert alice_connection.access_token() == alices_token


def test_refresh_ciphertext_copied_into_another_row_does_not_open(
    alice, bob, make_connection, refreshing_attio
):
    alices = make_connection(alice, "acme")
    bobs = make_connection(bob, "acme")
    assert alices.refresh_token_sealed
    bobs.refresh_token_sealed = alices.refresh_token_sealed
    with pytest.raises(DecryptionError):
        bobs.refresh_token()


def test_access_ciphertext_moved_to_the_refresh_field_does_not_open(
    alice, make_connection, refreshing_attio
):
    connection = make_connection(alice, "acme")
    connection.refresh_token_sealed = connection.access_token_sealed
    with pytest.raises(DecryptionError):
        connection.refresh_token()


def test_pending_revocation_ciphertext_does_not_open_in_another_row(
    alice_connection,
):
    first = PendingRevocation.objects.create(connection=alice_connection)
    first.seal_token("fake_at_secret_one")
    first.save()
    second = PendingRevocation.objects.create(connection=alice_connection)
    second.token_sealed = first.token_sealed
    with pytest.raises(DecryptionError):
        second.token()
    # Nor as a connection's token.
    alice_connection.access_token_sealed = first.token_sealed
    with pytest.raises(DecryptionError):
        alice_connection.access_token()


# --- Integrity ----------------------------------------------------------------


def test_every_single_byte_flip_raises_decryption_error():
    keys = ring(K1)
    sealed = keys.seal("fake_at_0123456789abcdef", aad="row:1:access_token")
    key_id, raw = raw_of(sealed)
    assert len(raw) == NONCE_BYTES + len("fake_at_0123456789abcdef") + TAG_BYTES
    regions = {"nonce": 0, "ciphertext": 0, "tag": 0}
    for index in range(len(raw)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(raw)
            tampered[index] ^= mask
            with pytest.raises(DecryptionError):
                keys.open(sealed_from(key_id, bytes(tampered)), aad="row:1:access_token")
        if index < NONCE_BYTES:
            regions["nonce"] += 1
        elif index >= len(raw) - TAG_BYTES:
            regions["tag"] += 1
        else:
            regions["ciphertext"] += 1
    assert regions == {"nonce": 12, "ciphertext": 24, "tag": 16}
    # The untouched value still opens, so the failures above are the flips.
    assert keys.open(sealed, aad="row:1:access_token") == "fake_at_0123456789abcdef"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-4], id="truncated"),
        pytest.param(lambda s: s.split("$")[0] + "$", id="empty-body"),
        pytest.param(lambda s: s.split("$")[0] + "$AAAA", id="shorter-than-nonce"),
        pytest.param(lambda s: sealed_from("k1", raw_of(s)[1] + b"\x00"), id="extended"),
        pytest.param(lambda s: sealed_from("k1", raw_of(s)[1][:-1]), id="short-tag"),
        pytest.param(lambda s: "k9" + s[2:], id="unknown-key-id"),
        pytest.param(lambda s: s.split("$")[1], id="no-key-id"),
        pytest.param(lambda s: "", id="empty"),
    ],
)
def test_malformed_sealed_values_raise_decryption_error(mangle):
    keys = ring(K1)
    sealed = keys.seal("fake_at_0123456789abcdef", aad="a")
    with pytest.raises(DecryptionError):
        keys.open(mangle(sealed), aad="a")


def test_wrong_aad_or_wrong_key_raises_decryption_error():
    sealed = ring(K1).seal("secret-token-value", aad="row:1:access_token")
    with pytest.raises(DecryptionError):
        ring(K1).open(sealed, aad="row:2:access_token")
    # Same key id, different key material.
    impostor = generate_key_entry("k1")
    with pytest.raises(DecryptionError):
        ring(impostor).open(sealed, aad="row:1:access_token")


def test_sealing_the_same_plaintext_10000_times_gives_distinct_nonces():
    keys = ring(K1)
    sealed = [keys.seal("fake_at_same_plaintext", aad="row:1:x") for _ in range(10_000)]
    raws = [raw_of(s)[1] for s in sealed]
    assert len(set(sealed)) == 10_000
    assert len({r[:NONCE_BYTES] for r in raws}) == 10_000
    assert len({r[NONCE_BYTES:] for r in raws}) == 10_000
    assert all("fake_at_same_plaintext" not in s for s in sealed)
    assert keys.open(sealed[-1], aad="row:1:x") == "fake_at_same_plaintext"


def test_sealed_value_names_its_key_and_hides_the_plaintext():
    keys = ring(K2, K1)
    sealed = keys.seal("fake_at_hello_world", aad="x")
    assert KeyRing.key_id_of(sealed) == "k2"
    assert keys.is_current(sealed)
    assert "fake_at_hello_world" not in sealed
    assert base64.urlsafe_b64encode(b"fake_at_hello_world").decode().rstrip("=") not in sealed


# --- The key ring -------------------------------------------------------------


def test_key_ring_requires_a_key():
    with pytest.raises(KeyConfigError):
        KeyRing([])
    with pytest.raises(KeyConfigError):
        KeyRing.from_entries([])
    with pytest.raises(KeyConfigError):
        KeyRing.from_entries(["", "   "])


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("k1", id="no-separator"),
        pytest.param("k1:", id="no-material"),
        pytest.param(":" + K1.split(":", 1)[1], id="no-id"),
        pytest.param("k$1:" + K1.split(":", 1)[1], id="separator-in-id"),
        pytest.param("k 1:" + K1.split(":", 1)[1], id="space-in-id"),
        pytest.param("k1:not base64 at all!", id="not-base64"),
        pytest.param("k1:" + K1.split(":", 1)[1].rstrip("="), id="missing-padding"),
        pytest.param("k1:" + base64.urlsafe_b64encode(b"x" * 16).decode(), id="16-bytes"),
        pytest.param("k1:" + base64.urlsafe_b64encode(b"x" * 31).decode(), id="31-bytes"),
        pytest.param("k1:" + base64.urlsafe_b64encode(b"x" * 33).decode(), id="33-bytes"),
        pytest.param("k1:" + base64.urlsafe_b64encode(b"x" * 64).decode(), id="64-bytes"),
    ],
)
def test_key_ring_rejects_malformed_keys(entry):
    with pytest.raises(KeyConfigError):
        KeyRing.from_entries([entry])


def test_key_ring_rejects_duplicate_ids():
    with pytest.raises(KeyConfigError, match="unique"):
        KeyRing.from_entries([generate_key_entry("k1"), generate_key_entry("k1")])
    material = bytes(32)
    with pytest.raises(KeyConfigError):
        KeyRing([Key("a", material), Key("b", material), Key("a", material)])


def test_key_ring_accepts_generated_keys_newest_first():
    keys = ring(K2, K1)
    assert keys.primary.key_id == "k2"
    assert set(keys.keys) == {"k1", "k2"}
    assert len(parse_key(K1).material) == 32


def test_key_config_errors_do_not_echo_key_material():
    material = K1.split(":", 1)[1]
    for entry in (f"k1:{material[:-6]}", f"k 1:{material}", f"k1:{material}!!"):
        try:
            KeyRing.from_entries([entry])
        except KeyConfigError as e:
            assert material[:12] not in str(e)


def test_generate_encryption_key_command_prints_a_usable_entry():
    out = io.StringIO()
    call_command("generate_encryption_key", "k7", stdout=out)
    entry = out.getvalue().strip()
    assert entry.startswith("k7:")
    keys = KeyRing.from_entries([entry])
    assert keys.open(keys.seal("x", aad="y"), aad="y") == "x"
    out2 = io.StringIO()
    call_command("generate_encryption_key", "k7", stdout=out2)
    assert out2.getvalue().strip() != entry


# --- Rotation -----------------------------------------------------------------


@pytest.fixture
def under_k1(settings):
    settings.FIELD_ENCRYPTION_KEYRING = ring(K1)
    return settings


def seal_rows(owner_factory, make_connection, count):
    rows = []
    for i in range(count):
        owner = owner_factory(f"user{i}")
        rows.append(make_connection(owner, "acme" if i % 2 else "globex"))
    return rows


def make_pending(connection, token):
    pending = PendingRevocation.objects.create(connection=connection)
    pending.seal_token(token)
    pending.save()
    return pending


def key_ids() -> set[str]:
    ids = set()
    for c in Connection.objects.all():
        ids.update(
            KeyRing.key_id_of(s) for s in (c.access_token_sealed, c.refresh_token_sealed) if s
        )
    ids.update(KeyRing.key_id_of(p.token_sealed) for p in PendingRevocation.objects.all())
    return ids


def rotate_to(settings, *entries):
    settings.FIELD_ENCRYPTION_KEYRING = ring(*entries)


def snapshot():
    return {
        c.pk: (
            c.access_token() if c.access_token_sealed else None,
            c.refresh_token(),
            c.version,
        )
        for c in Connection.objects.order_by("pk")
    }, {p.pk: p.token() for p in PendingRevocation.objects.order_by("pk")}


def run_reencrypt(*args) -> str:
    out = io.StringIO()
    call_command("reencrypt_tokens", *args, stdout=out)
    return out.getvalue()


def test_rotation_keeps_old_rows_readable_and_new_writes_use_the_new_key(
    under_k1, make_user, make_connection, refreshing_attio
):
    rows = seal_rows(make_user, make_connection, 3)
    before, _ = snapshot()
    assert key_ids() == {"k1"}

    rotate_to(under_k1, K2, K1)

    assert snapshot()[0] == before
    fresh = make_connection(make_user("newcomer"), "acme")
    assert KeyRing.key_id_of(fresh.access_token_sealed) == "k2"
    assert KeyRing.key_id_of(fresh.refresh_token_sealed) == "k2"
    rows[0].set_credentials(
        access_token="fake_at_rotated", refresh_token="fake_rt_rotated", expires_at=None
    )
    rows[0].save()
    rows[0].refresh_from_db()
    assert KeyRing.key_id_of(rows[0].access_token_sealed) == "k2"
    assert rows[0].access_token() == "fake_at_rotated"
    # Under k2 alone, the k1 rows can no longer open: rotation needs the re-encrypt.
    rotate_to(under_k1, K2)
    rows[1].refresh_from_db()
    with pytest.raises(DecryptionError):
        rows[1].access_token()


def test_reencrypt_moves_every_row_to_the_new_key_without_changing_versions(
    under_k1, make_user, make_connection, refreshing_attio
):
    rows = seal_rows(make_user, make_connection, 4)
    make_pending(rows[0], "fake_at_pending_zero")
    make_pending(rows[1], "fake_at_pending_one")
    # A revoked row has nothing sealed and is left alone.
    Connection.objects.filter(pk=rows[3].pk).update(
        access_token_sealed="", refresh_token_sealed="", status="revoked"
    )
    before = snapshot()
    rotate_to(under_k1, K2, K1)

    output = run_reencrypt()

    assert "Done: 5 rows re-encrypted under key 'k2'." in output
    assert key_ids() == {"k2"}
    assert snapshot() == before
    second = run_reencrypt()
    assert "Done: 0 rows re-encrypted" in second
    rotate_to(under_k1, K2)
    assert snapshot() == before


def test_reencrypt_is_resumable_after_an_interruption(
    under_k1, make_user, make_connection, refreshing_attio
):
    rows = seal_rows(make_user, make_connection, 5)
    for row in rows[:3]:
        make_pending(row, f"fake_at_pending_{row.pk}")
    before = snapshot()
    rotate_to(under_k1, K2, K1)

    real_reseal = reencrypt_tokens.reseal
    calls = []

    def crash_after_two(model, pk, fields):
        if len(calls) == 2:
            raise KeyboardInterrupt("worker killed")
        calls.append(pk)
        return real_reseal(model, pk, fields)

    with (
        mock.patch.object(reencrypt_tokens, "reseal", side_effect=crash_after_two),
        pytest.raises(KeyboardInterrupt),
    ):
        run_reencrypt("--batch-size", "1")

    assert key_ids() == {"k1", "k2"}
    done = {
        c.pk for c in Connection.objects.all() if KeyRing.key_id_of(c.access_token_sealed) == "k2"
    }
    assert done == set(calls)

    output = run_reencrypt("--batch-size", "1")

    assert "Done: 6 rows re-encrypted" in output
    assert key_ids() == {"k2"}
    assert snapshot() == before
    rotate_to(under_k1, K2)
    assert snapshot() == before


def test_a_credential_write_during_reencrypt_is_not_lost(
    under_k1, make_user, make_connection, refreshing_attio
):
    rows = seal_rows(make_user, make_connection, 3)
    rotate_to(under_k1, K2, K1)
    target = rows[2]
    real_reseal = reencrypt_tokens.reseal

    def refresh_between_batches(model, pk, fields):
        if model is Connection and pk == rows[1].pk:
            # A refresh commits for a later row while the run is between batches.
            row = Connection.objects.get(pk=target.pk)
            row.set_credentials(
                access_token="fake_at_refreshed_mid_run",
                refresh_token="fake_rt_refreshed_mid_run",
                expires_at=None,
            )
            row.save()
        return real_reseal(model, pk, fields)

    with mock.patch.object(reencrypt_tokens, "reseal", side_effect=refresh_between_batches):
        output = run_reencrypt("--batch-size", "1")

    # The refreshed row was already under k2 and was skipped, untouched.
    assert "Done: 2 rows re-encrypted" in output
    target.refresh_from_db()
    assert target.access_token() == "fake_at_refreshed_mid_run"
    assert target.refresh_token() == "fake_rt_refreshed_mid_run"
    assert target.version == 2
    assert key_ids() == {"k2"}


def test_a_row_sealed_under_the_new_key_is_skipped_untouched(under_k1, make_user, make_connection):
    old = make_connection(make_user("old"), "acme")
    rotate_to(under_k1, K2, K1)
    new = make_connection(make_user("new"), "acme")
    new_sealed = new.access_token_sealed
    old_sealed = old.access_token_sealed

    assert "Done: 1 row re-encrypted" in run_reencrypt()

    new.refresh_from_db()
    old.refresh_from_db()
    assert new.access_token_sealed == new_sealed
    assert old.access_token_sealed != old_sealed


def test_a_failed_revoke_retry_does_not_undo_a_concurrent_reseal(
    under_k1, alice, make_connection, fake_attio, worker
):
    connection = make_connection(alice, "acme")
    token = connection.access_token()
    fake_attio.fail_next("revoke", status=503, times=2)
    with worker():
        services.revoke_connection(connection, by=alice)
    pending = PendingRevocation.objects.get()
    assert KeyRing.key_id_of(pending.token_sealed) == "k1"
    rotate_to(under_k1, K2, K1)
    real_revoke = attio.revoke_token

    def reencrypt_while_attio_answers(token):
        # The re-encryption run reaches this row while the retry talks to Attio.
        assert "Done: 1 row re-encrypted" in run_reencrypt()
        return real_revoke(token)

    with mock.patch.object(attio, "revoke_token", side_effect=reencrypt_while_attio_answers):
        assert services.revoke_upstream(pending.pk) is False

    pending.refresh_from_db()
    assert pending.attempts == 2
    assert KeyRing.key_id_of(pending.token_sealed) == "k2"
    # Once k1 is retired, the pending revocation must still open.
    rotate_to(under_k1, K2)
    assert pending.token() == token


def test_reseal_under_the_same_key_is_a_no_op(alice_connection):
    sealed = alice_connection.access_token_sealed
    version = alice_connection.version
    assert alice_connection.reseal() is False
    assert alice_connection.access_token_sealed == sealed
    assert alice_connection.version == version

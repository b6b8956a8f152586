"""`manage.py check --database default` refuses encryption keys that don't open stored tokens."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connections.crypto import KeyRing, generate_key_entry


def run_check():
    call_command("check", "--database", "default", "--fail-level", "ERROR")


def test_check_passes_with_the_key_that_sealed_the_tokens(alice_connection):
    run_check()


def test_check_fails_when_a_key_id_is_missing(alice_connection, settings):
    settings.FIELD_ENCRYPTION_KEYRING = KeyRing.from_entries([generate_key_entry("other")])
    with pytest.raises(SystemCheckError, match="connections.E001"):
        run_check()


def test_check_fails_when_a_key_has_different_material(alice_connection, settings):
    key_id = settings.FIELD_ENCRYPTION_KEYRING.primary.key_id
    settings.FIELD_ENCRYPTION_KEYRING = KeyRing.from_entries([generate_key_entry(key_id)])
    with pytest.raises(SystemCheckError, match="connections.E002"):
        run_check()

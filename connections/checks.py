"""System checks: the configured encryption keys open the tokens already stored."""

from django.core.checks import Error, Tags, register
from django.db import DatabaseError

from .crypto import DecryptionError


@register(Tags.database)
def check_keys_open_stored_tokens(app_configs=None, databases=None, **kwargs):
    """One sealed token per key id in use must open: a key id whose material changed (a
    typo, a regenerated key) would otherwise only show when a user's call fails."""
    if not databases:
        return []
    from .models import Connection, keyring

    ring = keyring()
    errors = []
    seen: set[str] = set()
    try:
        rows = Connection.objects.exclude(access_token_sealed="").order_by("-pk")
        for connection in rows.only("pk", "access_token_sealed").iterator(chunk_size=500):
            key_id = ring.key_id_of(connection.access_token_sealed)
            if key_id in seen:
                continue
            seen.add(key_id)
            if key_id not in ring.keys:
                errors.append(
                    Error(
                        f"Stored tokens are sealed with key {key_id!r}, which is not in "
                        "FIELD_ENCRYPTION_KEYS.",
                        hint="Add the key back (older keys go after the newest).",
                        id="connections.E001",
                    )
                )
                continue
            try:
                connection.access_token()
            except DecryptionError:
                errors.append(
                    Error(
                        f"Key {key_id!r} in FIELD_ENCRYPTION_KEYS does not open the tokens "
                        "sealed with it: its value differs from the one that sealed them.",
                        hint="Restore the original value of that key.",
                        id="connections.E002",
                    )
                )
    except DatabaseError:
        return []  # no tables yet (before the first migrate)
    return errors

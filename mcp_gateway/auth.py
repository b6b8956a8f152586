"""A presented API key -> its ApiKey row, or None. Nothing else."""

import hmac
import re

from django.utils import timezone

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


async def authenticate(presented: str) -> ApiKey | None:
    """The active key (with its owner and connection loaded) or None."""
    public_id = public_id_of(presented)
    if public_id is None:
        return None
    key = (
        await ApiKey.objects.select_related("owner", "connection")
        .filter(public_id=public_id)
        .afirst()
    )
    if key is None or not hmac.compare_digest(key.digest, key_digest(presented)):
        return None
    if not key.is_active(timezone.now()) or not key.owner.is_active:
        return None
    return key

"""AES-256-GCM sealing of secrets at rest, with a key ring for rotation."""

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# A fixed key that only development may use. Production refuses to start with it
# (see settings.py), so a copied development database never opens in production.
DEVELOPMENT_KEY = "dev:ZGV2ZWxvcG1lbnQta2V5LW5vdC1mb3ItcHJvZHVjdGk="

NONCE_BYTES = 12
SEPARATOR = "$"


class KeyConfigError(ValueError):
    """The configured key list is missing or malformed."""


class DecryptionError(Exception):
    """A sealed value could not be opened: wrong key, wrong row, or tampered."""


@dataclass(frozen=True)
class Key:
    key_id: str
    material: bytes = field(repr=False)


def parse_key(entry: str) -> Key:
    """Parse one `key_id:base64url(32 bytes)` entry."""
    key_id, sep, encoded = entry.strip().partition(":")
    if not sep or not key_id or not encoded:
        raise KeyConfigError("each key must look like KEY_ID:BASE64 (32 bytes)")
    if not key_id.replace("-", "").replace("_", "").isalnum() or SEPARATOR in key_id:
        raise KeyConfigError("a key id may only contain letters, digits, '-' and '_'")
    try:
        material = base64.urlsafe_b64decode(encoded.encode())
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"key {key_id!r} is not valid base64") from None
    if len(material) != 32:
        raise KeyConfigError(f"key {key_id!r} decodes to {len(material)} bytes; AES-256 needs 32")
    return Key(key_id, material)


def generate_key_entry(key_id: str) -> str:
    """A fresh `key_id:base64` entry for FIELD_ENCRYPTION_KEYS."""
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


class KeyRing:
    """Keys newest first: the first seals, every key opens."""

    def __init__(self, keys: list[Key]):
        if not keys:
            raise KeyConfigError("at least one key is required")
        ids = [k.key_id for k in keys]
        if len(set(ids)) != len(ids):
            raise KeyConfigError("key ids must be unique")
        self.keys = {k.key_id: k for k in keys}
        self.primary = keys[0]

    @classmethod
    def from_entries(cls, entries: list[str]) -> "KeyRing":
        return cls([parse_key(e) for e in entries if e.strip()])

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary.key_id!r}, keys={list(self.keys)!r})"

    def seal(self, plaintext: str, *, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        body = AESGCM(self.primary.material).encrypt(nonce, plaintext.encode(), aad.encode())
        encoded = base64.urlsafe_b64encode(nonce + body).decode()
        return f"{self.primary.key_id}{SEPARATOR}{encoded}"

    def open(self, sealed: str, *, aad: str) -> str:
        key_id, sep, encoded = sealed.partition(SEPARATOR)
        key = self.keys.get(key_id)
        if not sep or key is None:
            raise DecryptionError(f"no key with id {key_id!r} in the key ring")
        try:
            raw = base64.urlsafe_b64decode(encoded.encode())
            opened = AESGCM(key.material).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError("sealed value failed its integrity check") from None
        return opened.decode()

    @staticmethod
    def key_id_of(sealed: str) -> str:
        return sealed.partition(SEPARATOR)[0]

    def is_current(self, sealed: str) -> bool:
        return self.key_id_of(sealed) == self.primary.key_id

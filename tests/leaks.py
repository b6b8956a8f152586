"""Find secrets in captured text, in any of the encodings they could hide in."""

import base64
from urllib.parse import quote, quote_plus


def base64_fragments(data: bytes, encode) -> set[str]:
    """What `data` looks like inside any base64 text, at each of the 3 alignments."""
    fragments = set()
    for offset in range(3):
        encoded = encode(b"\0" * offset + data).decode()
        first = -(-8 * offset // 6)  # first character made only of data bits
        last = (8 * (offset + len(data)) - 6) // 6
        fragments.add(encoded[first : last + 1])
    return fragments


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex()}
    forms.add(raw.hex().upper())
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms |= {whole, whole.rstrip("=")}
        forms |= base64_fragments(raw, encode)
    return {f for f in forms if len(f) >= 8}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if any(form in text for form in encodings(secret))]

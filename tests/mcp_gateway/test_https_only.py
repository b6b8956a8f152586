"""/mcp goes around Django's SecurityMiddleware, so it applies the same rules itself."""

import pytest

from .test_endpoint import INITIALIZE, JSON


@pytest.fixture
def production_tls(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


def initialize(raw, key: str, **headers):
    return raw(
        "POST",
        "/mcp",
        json=INITIALIZE,
        headers={**JSON, "Authorization": f"Bearer {key}", **headers},
    )


@pytest.mark.parametrize("proto", [None, "http"])
def test_plain_http_is_refused_without_a_redirect(production_tls, raw, alice_key, proto):
    _, plaintext = alice_key
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    answer = initialize(raw, plaintext, **headers)
    assert answer.status_code == 403  # never a redirect: the client would resend its key
    assert "location" not in answer.headers
    assert answer.json()["error"] == "https_required"
    assert "https" in answer.json()["error_description"]


def test_https_through_the_proxy_is_served_with_hsts(production_tls, raw, alice_key):
    _, plaintext = alice_key
    answer = initialize(raw, plaintext, **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    assert answer.headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    # The refusals /mcp makes itself (here: a missing key) carry it too.
    unauthorized = raw(
        "POST", "/mcp", json=INITIALIZE, headers={**JSON, "X-Forwarded-Proto": "https"}
    )
    assert unauthorized.status_code == 401 and "strict-transport-security" in unauthorized.headers


def test_in_development_plain_http_is_served(raw, alice_key, settings):
    assert settings.SECURE_SSL_REDIRECT is False
    _, plaintext = alice_key
    answer = initialize(raw, plaintext)
    assert answer.status_code == 200 and "strict-transport-security" not in answer.headers

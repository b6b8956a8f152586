"""Repeated failed authentications are slowed down per client address; nothing a stranger
sends can keep someone else's key out. And the limiter's own bookkeeping stays bounded."""

import httpx2
from asgiref.sync import async_to_sync

from mcp_gateway import services
from mcp_gateway.models import PREFIX, checksum, random_base62
from mcp_gateway.policy import RateLimiter

from .test_endpoint import INITIALIZE, JSON


def statuses(gateway, attempts: list[tuple[str, str]]) -> list[int]:
    """POST initialize once per (client address, key), all to one gateway instance."""
    return [response.status_code for response in responses(gateway, attempts)]


def responses(gateway, attempts: list[tuple[str, str]]) -> list:
    """The responses to `statuses`'s requests, made one after the other in one task."""
    return sent(
        gateway, [(address, [("Authorization", f"Bearer {key}")]) for address, key in attempts]
    )


def sent(gateway, requests: list[tuple[str, list[tuple[str, str]]]]) -> list:
    """POST initialize once per (client address, headers besides JSON's), to one gateway."""
    server, app = gateway

    async def go():
        results = []
        async with server.session_manager.run():
            for address, headers in requests:
                transport = httpx2.ASGITransport(app=app, client=(address, 4321))
                async with httpx2.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1:8000"
                ) as http:
                    response = await http.post(
                        "/mcp", json=INITIALIZE, headers=[*JSON.items(), *headers]
                    )
                    results.append(response)
        return results

    return async_to_sync(go)()


def wrong_secret_for(public_id: str) -> str:
    body = f"{PREFIX}{public_id}_{random_base62(43)}"
    return body + checksum(body)


def test_one_address_with_many_bad_keys_is_slowed_down(gateway, alice_key, settings):
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 5
    _, plaintext = alice_key
    results = statuses(
        gateway,
        [("10.0.0.1", "nonsense")] * 5 + [("10.0.0.1", plaintext), ("10.0.0.2", plaintext)],
    )
    assert results == [401] * 5 + [429, 200]


def test_forged_requests_for_a_key_id_do_not_lock_out_its_holder(gateway, alice_key, settings):
    # Alice's public id is no secret and anyone can compute a checksum that matches it:
    # wrong secrets for it, from other addresses, must not keep her right one out.
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 3
    key, plaintext = alice_key
    forged = [(f"10.0.1.{i}", wrong_secret_for(key.public_id)) for i in range(10)]
    results = statuses(gateway, [*forged, ("10.0.2.1", plaintext)])
    assert results == [401] * 10 + [200]


def test_a_lowercase_bearer_is_checked_and_its_failures_counted(gateway, alice_key, settings):
    # The SDK takes the scheme in any case; so must the failure count.
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 3
    key, plaintext = alice_key
    wrong = [("10.0.5.1", [("Authorization", f"bearer {wrong_secret_for(key.public_id)}")])]
    right = [("10.0.5.1", [("Authorization", f"bearer {plaintext}")])]
    results = sent(gateway, right + wrong * 3 + right)
    assert [r.status_code for r in results] == [200, 401, 401, 401, 429]


def test_a_request_with_two_authorization_headers_is_refused(gateway, alice_key):
    _, plaintext = alice_key
    headers = [("Authorization", f"Bearer {plaintext}"), ("Authorization", "Bearer nonsense")]
    (response,) = sent(gateway, [("10.0.6.1", headers)])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "one Authorization header" in response.json()["error_description"]


def test_a_request_with_too_many_headers_is_refused(gateway, alice_key):
    _, plaintext = alice_key
    padding = [(f"X-Padding-{i}", "x") for i in range(100)]
    (response,) = sent(
        gateway, [("10.0.7.1", [("Authorization", f"Bearer {plaintext}"), *padding])]
    )
    assert response.status_code == 431
    assert "Too many request headers" in response.json()["error_description"]


def test_an_ordinary_number_of_headers_is_accepted(gateway, alice_key):
    _, plaintext = alice_key
    padding = [(f"X-Padding-{i}", "x") for i in range(80)]
    (response,) = sent(
        gateway, [("10.0.7.2", [("Authorization", f"Bearer {plaintext}"), *padding])]
    )
    assert response.status_code == 200


def test_successes_are_not_counted(gateway, alice_key, settings):
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 2
    _, plaintext = alice_key
    assert statuses(gateway, [("10.0.3.1", plaintext)] * 5) == [200] * 5


def test_a_revoked_keys_401_is_counted_like_any_other(gateway, alice_key, alice, settings):
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 3
    key, plaintext = alice_key
    services.revoke_api_key(key, by=alice)
    results = responses(gateway, [("10.0.4.1", plaintext)] * 2 + [("10.0.4.1", "nonsense")] * 2)

    assert [r.status_code for r in results] == [401, 401, 401, 429]
    assert "revoked" in results[1].json()["error_description"]
    # The next 401, on the same gateway and in the same task, is not told about that key.
    assert results[2].json()["error_description"] == "Authentication required"


def test_the_limiter_keeps_at_most_max_buckets_dropping_the_least_recent():
    limiter = RateLimiter()
    limiter.MAX_BUCKETS = 100
    limiter.record("ip:kept")
    for i in range(1_000):
        limiter.record(f"ip:10.1.{i // 256}.{i % 256}")
        if i % 50 == 0:
            limiter.record("ip:kept")  # recorded again: moves to the back of the line

    assert len(limiter.windows) == 100
    assert "ip:kept" in limiter.windows
    assert "ip:10.1.0.0" not in limiter.windows
    assert limiter.exceeded("ip:kept", 20)
    assert not limiter.exceeded("ip:10.1.0.0", 1)


def test_a_bucket_held_at_its_limit_is_not_the_first_dropped():
    """Its requests are refused, so nothing is recorded for it; being asked about keeps it."""
    limiter = RateLimiter()
    limiter.MAX_BUCKETS = 100
    for _ in range(5):
        limiter.record("ip:attacker")
    for i in range(1_000):
        assert limiter.exceeded("ip:attacker", 5)  # each of its requests asks first
        limiter.record(f"ip:10.3.{i // 256}.{i % 256}")
    assert limiter.exceeded("ip:attacker", 5)


def test_one_ipv6_client_s_addresses_in_its_64_count_as_one(gateway, alice_key, settings):
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 3
    _, plaintext = alice_key
    same_64 = [(f"2001:db8:1:2::{i:x}", "nonsense") for i in range(1, 4)]
    results = statuses(
        gateway, [*same_64, ("2001:db8:1:2::99", plaintext), ("2001:db8:1:3::1", plaintext)]
    )
    assert results == [401] * 3 + [429, 200]


def test_asking_the_limiter_adds_no_bucket():
    limiter = RateLimiter()
    limiter.record("ip:10.2.0.1")
    for i in range(1_000):
        assert not limiter.exceeded(f"ip:10.2.1.{i}", 1)
    assert list(limiter.windows) == ["ip:10.2.0.1"]


def test_a_refused_call_is_not_counted_and_a_window_slides(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("mcp_gateway.policy.time.monotonic", lambda: now[0])
    limiter = RateLimiter()
    assert limiter.retry_after(7, 2) is None
    now[0] += 10
    assert limiter.retry_after(7, 2) is None
    assert limiter.retry_after(7, 2) == 50.0
    assert len(limiter.windows[7]) == 2
    now[0] += 50.5  # the first call is now older than a minute
    assert limiter.retry_after(7, 2) is None
    assert not limiter.exceeded(7, 3)

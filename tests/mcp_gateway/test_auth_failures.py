"""Repeated failed authentications are slowed down per client address and per key id."""

import httpx2
from asgiref.sync import async_to_sync

from mcp_gateway import services
from mcp_gateway.models import PREFIX, checksum, random_base62

from .test_endpoint import INITIALIZE, JSON


def statuses(gateway, attempts: list[tuple[str, str]]) -> list[int]:
    """POST initialize once per (client address, key), all to one gateway instance."""
    return [response.status_code for response in responses(gateway, attempts)]


def responses(gateway, attempts: list[tuple[str, str]]) -> list:
    """The responses to `statuses`'s requests, made one after the other in one task."""
    server, app = gateway

    async def go():
        results = []
        async with server.session_manager.run():
            for address, key in attempts:
                transport = httpx2.ASGITransport(app=app, client=(address, 4321))
                async with httpx2.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1:8000"
                ) as http:
                    response = await http.post(
                        "/mcp",
                        json=INITIALIZE,
                        headers={**JSON, "Authorization": f"Bearer {key}"},
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


def test_guessing_one_keys_secret_from_many_addresses_is_slowed_down(gateway, alice_key, settings):
    settings.MCP_AUTH_FAILURES_PER_MINUTE = 3
    key, plaintext = alice_key
    guesses = [(f"10.0.1.{i}", wrong_secret_for(key.public_id)) for i in range(3)]
    results = statuses(gateway, [*guesses, ("10.0.2.1", wrong_secret_for(key.public_id))])
    assert results == [401, 401, 401, 429]


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

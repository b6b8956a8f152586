"""The gateway under uvicorn with two worker processes, over real HTTP."""

import base64
import hashlib
import os
import secrets

import httpx
import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import services
from mcp_gateway.models import ConnectedApp

from ..conftest import PASSWORD
from ..connections.test_celery_e2e import database_url
from ..faults.harness import free_port, log_file, start_uvicorn, stop, wait_until_serving
from .oauth_flow import LOOPBACK_REDIRECT, Person
from .test_endpoint import INITIALIZE


@pytest.fixture
def two_workers(fake_attio, tmp_path):
    port = free_port()
    with fake_attio.serve() as fake_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
            "ATTIO_CLIENT_ID": fake_attio.client_id,
            "ATTIO_CLIENT_SECRET": fake_attio.client_secret,
            "ATTIO_TOKEN_URL": f"{fake_url}/oauth/token",
            "ATTIO_API_BASE_URL": fake_url,
        }
        with log_file(tmp_path / "uvicorn.log") as log:
            process = start_uvicorn(env, port, log, workers=2)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_until_serving(base, process, path="/healthz")
                yield base
            finally:
                stop(process)


def post_initialize(base: str, key: str) -> int:
    # A new connection each time, so the two workers share the requests.
    return httpx.post(
        f"{base}/mcp",
        json=INITIALIZE,
        headers={
            "Authorization": f"Bearer {key}",
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    ).status_code


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_key_revoked_through_one_worker_is_refused_by_the_other(
    two_workers, alice, alice_connection
):
    key, plaintext = services.create_api_key(alice, connection=alice_connection, name="w")

    async def whoami():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {plaintext}"}, timeout=30)
        async with (
            http,
            Client(streamable_http_client(f"{two_workers}/mcp", http_client=http)) as c,
        ):
            return await c.call_tool("whoami", {})

    result = async_to_sync(whoami)()
    assert not result.is_error and result.structured_content["workspace_name"] == "Acme"
    assert [post_initialize(two_workers, plaintext) for _ in range(10)] == [200] * 10
    services.revoke_api_key(key, by=alice)
    assert [post_initialize(two_workers, plaintext) for _ in range(10)] == [401] * 10


def oauth_access_token(base: str, username: str) -> str:
    """What an MCP client does: register, send the user to consent, exchange the code."""
    registered = httpx.post(
        f"{base}/oauth/register/",
        json={"client_name": "workers", "redirect_uris": [LOOPBACK_REDIRECT],
              "token_endpoint_auth_method": "none"},
    ).json()  # fmt: skip
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    authorize = httpx.Request(
        "GET",
        f"{base}/oauth/authorize/",
        params={
            "response_type": "code",
            "client_id": registered["client_id"],
            "redirect_uri": LOOPBACK_REDIRECT,
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
            "state": "s",
            "resource": f"{base}/mcp",
        },
    ).url

    async def approve():
        person = Person(base, username)
        try:
            return await person.approve(str(authorize))
        finally:
            await person.close()

    code = async_to_sync(approve)()["code"]
    tokens = httpx.post(
        f"{base}/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": LOOPBACK_REDIRECT,
            "client_id": registered["client_id"],
            "code_verifier": verifier,
            "resource": f"{base}/mcp",
        },
    )
    assert tokens.status_code == 200, tokens.text
    return tokens.json()["access_token"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connected_app_revoked_through_one_worker_is_refused_by_the_other(
    two_workers, alice, alice_connection
):
    # The workers hash passwords as production does, not as this test process does.
    alice.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    alice.save()
    token = oauth_access_token(two_workers, "alice")
    assert [post_initialize(two_workers, token) for _ in range(10)] == [200] * 10
    services.revoke_connected_app(ConnectedApp.objects.get(), by=alice)
    assert [post_initialize(two_workers, token) for _ in range(10)] == [401] * 10

"""Tests for the fake Attio in tests/fake_attio (no database, no Django needed)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import httpx
import pytest

from tests.fake_attio import FakeAttio, spec

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
REDIRECT_URI = "http://portal.test/connections/attio/callback"


@pytest.fixture
def fake() -> FakeAttio:
    return FakeAttio()


@pytest.fixture
def client(fake: FakeAttio):
    with httpx.Client(transport=fake.transport()) as client:
        yield client


def authorize_url(**extra: str) -> str:
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": "state-123",
        **extra,
    }
    return "https://app.attio.com/authorize?" + urlencode(params)


def code_from(location: str) -> str:
    return httpx.URL(location).params["code"]


def exchange(client: httpx.Client, code: str, **extra: str) -> httpx.Response:
    form = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": code,
        **extra,
    }
    return client.post("https://app.attio.com/oauth/token", data=form)


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    form = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    return client.post("https://app.attio.com/oauth/token", data=form)


def whoami(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("https://api.attio.com/v2/self", headers={"Authorization": f"Bearer {token}"})


def connect(fake: FakeAttio, client: httpx.Client, **extra: str) -> dict:
    response = exchange(client, code_from(fake.approve(authorize_url(**extra))))
    assert response.status_code == 200, response.text
    return response.json()


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- authorize ----------------------------------------------------------------


def test_consent_page_is_branded_and_carries_the_parameters(client):
    page = client.get(authorize_url(code_challenge="abc", code_challenge_method="S256"))
    assert page.status_code == 200
    assert "Fake Attio" in page.text and "TEST DOUBLE" in page.text
    assert 'id="approve"' in page.text and 'id="deny"' in page.text
    assert "Acme" in page.text and "Globex" in page.text
    assert 'name="code_challenge" value="abc"' in page.text
    assert 'name="state" value="state-123"' in page.text


def test_approve_redirects_with_code_and_state(fake, client):
    form = dict(httpx.URL(authorize_url()).params)
    form.update(decision="approve", workspace=fake.workspace("globex").id)
    answer = client.post("https://app.attio.com/authorize", data=form)
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert str(location).startswith(REDIRECT_URI)
    assert location.params["state"] == "state-123"
    assert location.params["code"].startswith("fake_code_")

    token = exchange(client, location.params["code"]).json()["access_token"]
    assert whoami(client, token).json()["workspace_slug"] == "globex"


def test_deny_redirects_with_access_denied(fake):
    location = httpx.URL(fake.approve(authorize_url(), decision="deny"))
    assert location.params["error"] == "access_denied"
    assert location.params["error_description"]
    assert location.params["state"] == "state-123"
    assert "code" not in location.params


def test_bad_client_or_redirect_uri_gets_a_page_not_a_redirect():
    fake = FakeAttio(redirect_uris=[REDIRECT_URI])
    with httpx.Client(transport=fake.transport()) as client:
        wrong_client = client.get(authorize_url(client_id="someone-else"))
        wrong_redirect = client.get(authorize_url(redirect_uri="https://evil.test/cb"))
    for page in (wrong_client, wrong_redirect):
        assert page.status_code == 400
        assert "location" not in page.headers
        assert "Fake Attio" in page.text


def test_wrong_response_type_is_reported_by_redirect(client):
    answer = client.get(authorize_url(response_type="token"))
    assert answer.status_code == 302
    assert httpx.URL(answer.headers["location"]).params["error"] == ("unsupported_response_type")


# --- token endpoint -------------------------------------------------------------


def test_static_shape_token_has_only_access_token_and_type(fake, client):
    body = connect(fake, client)
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("fake_at_")
    me = whoami(client, body["access_token"]).json()
    assert me["active"] is True and me["exp"] is None
    assert me["workspace_id"] == me["sub"] == fake.workspaces[0].id
    assert me["client_id"] == me["aud"] == CLIENT_ID
    assert me["iss"] == "attio.com"
    assert me["scope"] == fake.scopes


def test_code_is_single_use(fake, client):
    code = code_from(fake.approve(authorize_url()))
    assert exchange(client, code).status_code == 200
    again = exchange(client, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_code_expires_after_ten_minutes(fake, client):
    code = code_from(fake.approve(authorize_url()))
    fake.advance(601)
    answer = exchange(client, code)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Authorization code expired.",
    }


def test_redirect_uri_must_match_when_sent(fake, client):
    code = code_from(fake.approve(authorize_url()))
    answer = exchange(client, code, redirect_uri="http://other.test/cb")
    assert answer.json()["error"] == "invalid_grant"
    assert exchange(client, code, redirect_uri=REDIRECT_URI).status_code == 200


def test_pkce_verifier_must_match(fake, client):
    verifier = "v" * 50
    url = authorize_url(code_challenge=s256(verifier), code_challenge_method="S256")

    wrong = exchange(client, code_from(fake.approve(url)), code_verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = exchange(client, code_from(fake.approve(url)))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    right = exchange(client, code_from(fake.approve(url)), code_verifier=verifier)
    assert right.status_code == 200


def test_wrong_client_is_invalid_client(fake, client):
    code = code_from(fake.approve(authorize_url()))
    answer = exchange(client, code, client_secret="wrong")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_http_basic_client_authentication_is_accepted(fake, client):
    code = code_from(fake.approve(authorize_url()))
    answer = client.post(
        "https://app.attio.com/oauth/token",
        data={"grant_type": "authorization_code", "code": code},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert answer.status_code == 200


def test_static_shape_refuses_refresh_grant(fake, client):
    connect(fake, client)
    answer = refresh(client, "fake_rt_anything")
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_refreshing_shape_rotates_and_rejects_reuse():
    fake = FakeAttio(token_shape="refreshing", access_token_lifetime=600)
    with httpx.Client(transport=fake.transport()) as client:
        first = connect(fake, client)
        assert first["expires_in"] == 600
        assert first["refresh_token"].startswith("fake_rt_")
        me = whoami(client, first["access_token"]).json()
        assert me["exp"] == me["iat"] + 600

        second = refresh(client, first["refresh_token"])
        assert second.status_code == 200
        second = second.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]

        reused = refresh(client, first["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        assert refresh(client, second["refresh_token"]).status_code == 200
    assert fake.count("refresh") == 3
    assert fake.count("token") == 1


def test_expired_access_token_is_inactive_but_refreshable():
    fake = FakeAttio(token_shape="refreshing")
    with httpx.Client(transport=fake.transport()) as client:
        tokens = connect(fake, client)
        fake.advance(3601)
        assert whoami(client, tokens["access_token"]).json() == {"active": False}
        renewed = refresh(client, tokens["refresh_token"]).json()
        assert whoami(client, renewed["access_token"]).json()["active"] is True

        fake.expire(renewed["access_token"])
        assert whoami(client, renewed["access_token"]).json() == {"active": False}


# --- revoke, introspect, /v2/self -------------------------------------------------


def test_revoke_then_self_is_inactive(fake, client):
    token = connect(fake, client)["access_token"]
    answer = client.post(
        "https://app.attio.com/oauth/revoke",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 204
    me = whoami(client, token)
    assert me.status_code == 200 and me.json() == {"active": False}


def test_revoke_by_form_field_takes_the_refresh_token_too():
    fake = FakeAttio(token_shape="refreshing")
    with httpx.Client(transport=fake.transport()) as client:
        tokens = connect(fake, client)
        answer = client.post(
            "https://app.attio.com/oauth/revoke",
            data={
                "token": tokens["access_token"],
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        assert answer.status_code == 204
        assert refresh(client, tokens["refresh_token"]).json()["error"] == ("invalid_grant")
        unknown = client.post("https://app.attio.com/oauth/revoke", data={"token": "nonsense"})
        assert unknown.status_code == 204


def test_introspect(fake, client):
    token = connect(fake, client)["access_token"]
    url = "https://app.attio.com/oauth/introspect"
    active = client.post(url, headers={"Authorization": f"Bearer {token}"}).json()
    assert active == whoami(client, token).json()
    assert active["active"] is True
    fake.deactivate(token)
    inactive = client.post(url, headers={"Authorization": f"Bearer {token}"})
    assert inactive.status_code == 200 and inactive.json() == {"active": False}
    assert fake.count("introspect") == 2


def test_self_without_or_with_garbage_authorization_is_401(client):
    for headers in ({}, {"Authorization": "Token abc"}, {"Authorization": "Bearer "}):
        answer = client.get("https://api.attio.com/v2/self", headers=headers)
        assert answer.status_code == 401
        body = answer.json()
        assert body["status_code"] == 401 and body["type"] == "auth_error"
        assert set(body) == {"status_code", "type", "code", "message"}


def test_unknown_token_is_inactive_not_401(client):
    answer = whoami(client, "fake_at_never_issued")
    assert answer.status_code == 200 and answer.json() == {"active": False}


def test_api_key_and_basic_auth(fake, client):
    key = fake.add_api_key(workspace="globex", scopes="record_permission:read")
    me = whoami(client, key).json()
    assert me["workspace_slug"] == "globex"
    assert me["scope"] == "record_permission:read"
    basic = client.get("https://api.attio.com/v2/self", auth=(key, ""))
    assert basic.json()["active"] is True


def test_revoke_all_by_workspace(fake, client):
    acme = fake.issue_tokens("acme")["access_token"]
    globex = fake.issue_tokens("globex")["access_token"]
    fake.revoke_all(workspace="acme")
    assert whoami(client, acme).json() == {"active": False}
    assert whoami(client, globex).json()["active"] is True
    fake.revoke_all()
    assert whoami(client, globex).json() == {"active": False}


# --- test controls ----------------------------------------------------------------


def test_calls_are_recorded_unredacted_and_secrets_are_listed(fake, client):
    tokens = connect(fake, client)
    call = fake.last("token")
    assert call.form["client_secret"] == CLIENT_SECRET
    assert call.form["grant_type"] == "authorization_code"
    assert call.status == 200
    assert tokens["access_token"] in fake.all_secrets()
    assert CLIENT_SECRET in fake.all_secrets()
    assert [c.endpoint for c in fake.calls] == ["authorize", "authorize", "token"]


def test_fail_next_status_then_recovers(fake, client):
    token = fake.issue_tokens()["access_token"]
    fake.fail_next("self", status=503, times=2)
    first, second, third = (whoami(client, token) for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.json()["status_code"] == 503
    assert third.status_code == 200
    fake.fail_next("token", status=500, body={"error": "server_error"})
    assert exchange(client, "whatever").json() == {"error": "server_error"}


def test_fail_next_exception_is_raised_by_the_transport(fake, client):
    fake.fail_next("token", exception=httpx.ConnectTimeout)
    with pytest.raises(httpx.ConnectTimeout):
        exchange(client, "whatever")
    assert fake.last("token").error == "ConnectTimeout"
    assert fake.last("token").status is None


def test_rate_limit_with_http_date_and_seconds(fake, client):
    token = fake.issue_tokens()["access_token"]
    fake.rate_limit_next("self", retry_after=2)
    limited = whoami(client, token)
    assert limited.status_code == 429
    assert limited.json() == {
        "status_code": 429,
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
        "message": "Rate limit exceeded, please try again later",
    }
    reset_at = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert 0 <= reset_at - time.time() <= 3

    fake.rate_limit_next("*", retry_after=5, http_date=False)
    assert whoami(client, token).headers["Retry-After"] == "5"
    assert whoami(client, token).status_code == 200


def test_delay_sync_and_async(fake):
    token = fake.issue_tokens()["access_token"]
    fake.delay("self", 0.2)
    with httpx.Client(transport=fake.transport()) as client:
        started = time.monotonic()
        assert whoami(client, token).status_code == 200
        assert time.monotonic() - started >= 0.2

    async def three_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=fake.async_transport()) as client:
            headers = {"Authorization": f"Bearer {token}"}
            url = "https://api.attio.com/v2/self"
            return await asyncio.gather(*(client.get(url, headers=headers) for _ in range(3)))

    started = time.monotonic()
    answers = asyncio.run(three_at_once())
    # asyncio.sleep lets the three delays overlap.
    assert time.monotonic() - started < 0.5
    assert [a.json()["active"] for a in answers] == [True, True, True]
    fake.delay("self", 0)
    assert fake.count("self") == 4


def test_reset_forgets_everything(fake, client):
    token = connect(fake, client)["access_token"]
    fake.fail_next("self", status=500)
    fake.reset()
    assert fake.calls == [] and fake.tokens() == []
    assert whoami(client, token).json() == {"active": False}


def test_many_threads_at_once(fake):
    results: list[str] = []

    def worker() -> None:
        with httpx.Client(transport=fake.transport()) as client:
            for _ in range(5):
                token = connect(fake, client)["access_token"]
                assert whoami(client, token).json()["active"] is True
                results.append(token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 40
    assert fake.count("token") == 40 and fake.count("self") == 40


# --- server mode -------------------------------------------------------------------


def test_server_mode_full_flow_over_loopback(fake):
    with fake.serve() as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        assert base_url.startswith("http://127.0.0.1:")
        page = client.get("/authorize", params=dict(httpx.URL(authorize_url()).params))
        assert page.status_code == 200 and "Fake Attio" in page.text
        form = {**dict(httpx.URL(authorize_url()).params), "decision": "approve"}
        answer = client.post("/authorize", data=form)
        assert answer.status_code == 302
        code = code_from(answer.headers["location"])
        token = client.post(
            "/oauth/token",
            data={
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_type": "authorization_code",
                "code": code,
            },
        ).json()["access_token"]
        me = client.get("/v2/self", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["workspace_slug"] == "acme"

        fake.fail_next("self", exception=httpx.ReadTimeout)
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v2/self", timeout=0.3)
        fake.fail_next("self", exception=httpx.ConnectError)
        with pytest.raises(httpx.TransportError):
            client.get("/v2/self")
        fake.rate_limit_next("self")
        assert client.get("/v2/self").headers["retry-after"].endswith("GMT")


# --- OpenAPI spec checks ---------------------------------------------------------


def test_spec_accepts_self_responses(fake, client):
    spec.validate_request("GET", "/v2/self")
    active = whoami(client, fake.issue_tokens()["access_token"]).json()
    assert active["active"] is True
    spec.validate_response("GET", "/v2/self", 200, active)
    spec.validate_response("GET", "/v2/self", 200, {"active": False})
    with pytest.raises(AssertionError, match="workspace_id"):
        spec.validate_response("GET", "/v2/self", 200, {**active, "workspace_id": "not-a-uuid"})


def test_spec_rejects_a_bad_request():
    path = "/v2/objects/people/records/query"
    spec.validate_request("POST", path, {}, {"filter": {"name": "Ada"}, "limit": 10})
    with pytest.raises(AssertionError, match=r"body\.limit.*not of type 'number'"):
        spec.validate_request("POST", path, {}, {"limit": "ten"})
    with pytest.raises(AssertionError, match="not of type 'object'"):
        spec.validate_request("POST", path, {}, ["not", "an", "object"])
    with pytest.raises(AssertionError, match="matching_attribute"):
        spec.validate_request("PUT", "/v2/objects/people/records", {}, {"data": {}})
    with pytest.raises(AssertionError, match="no path"):
        spec.validate_request("GET", "/v2/nowhere")


def test_strict_fake_answers_400_and_records_the_violation(fake, client):
    token = fake.issue_tokens()["access_token"]
    answer = client.post(
        "https://api.attio.com/v2/objects/people/records/query",
        json={"filter": "name=Ada"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    assert answer.json()["type"] == "invalid_request_error"
    assert "body.filter" in answer.json()["message"]
    [violation] = fake.spec_violations
    assert violation.kind == "request" and "body.filter" in violation.message

    # A request the spec allows, on an endpoint the fake has not built yet.
    unbuilt = client.get(
        "https://api.attio.com/v2/webhooks",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unbuilt.status_code == 404 and len(fake.spec_violations) == 1

"""Sign-in through an OpenID Connect provider: a real one (django-oauth-toolkit's, in a
process of its own on a loopback port, tests/oidc_provider), driven over HTTP as a browser
would, and the portal's pages through Django's test client."""

import logging
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from connections.models import AuditEvent
from tests.oidc_provider.__main__ import CLIENT_ID, CLIENT_SECRET, PASSWORD

from .faults.harness import free_port
from .leaks import leaks
from .test_settings import run_django

User = get_user_model()

REPO = Path(__file__).resolve().parent.parent
PORTAL = "http://testserver"
CALLBACK = f"{PORTAL}/accounts/sso/callback/"


@pytest.fixture(scope="module")
def identity_provider(tmp_path_factory):
    """The provider's base URL; it serves until the module's tests are done."""
    port = free_port()
    database = tmp_path_factory.mktemp("identity-provider") / "provider.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider", str(port), CALLBACK, str(database)],
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("the test identity provider exited")
            try:
                if httpx.get(f"{base}/o/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            raise RuntimeError("the test identity provider did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(settings, identity_provider, db):
    settings.PORTAL_BASE_URL = PORTAL
    settings.OIDC_DISCOVERY_URL = f"{identity_provider}/o/.well-known/openid-configuration"
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = "Team ID"
    settings.OIDC_ALLOWED_DOMAINS = ["team.example"]
    settings.OIDC_NEW_USERS_ACTIVE = True
    return identity_provider


def start(client, query: str = "") -> str:
    """Start a sign-in at the portal; returns the provider's authorize URL."""
    response = client.get(f"/accounts/sso/{query}")
    assert response.status_code == 302
    return response["Location"]


def approve(authorize_url: str, username: str) -> str:
    """Sign in at the provider as `username`; returns the portal callback it redirects to."""
    with httpx.Client() as browser:
        to_login = browser.get(authorize_url)
        assert to_login.status_code == 302, to_login.text
        login_url = httpx.URL(authorize_url).join(to_login.headers["location"])
        page = browser.get(login_url)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        signed_in = browser.post(
            login_url,
            data={
                "csrfmiddlewaretoken": csrf,
                "username": username,
                "password": PASSWORD,
                "next": parse_qs(login_url.query.decode())["next"][0],
            },
            headers={"Referer": str(login_url)},
        )
        assert signed_in.status_code == 302, signed_in.text
        back = browser.get(login_url.join(signed_in.headers["location"]))
        assert back.status_code == 302, back.text
        callback = back.headers["location"]
    assert callback.startswith(CALLBACK)
    return callback


def finish(client, callback: str):
    parts = urlsplit(callback)
    return client.get(parts.path, parse_qs(parts.query))


def signed_in_user(client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


# --- signing in ------------------------------------------------------------------------


def test_the_sign_in_page_offers_the_provider(client, sso):
    page = client.get("/accounts/login/")

    assert "Sign in with Team ID" in page.content.decode()
    # Password sign-in stays on unless switched off.
    assert 'name="password"' in page.content.decode()


def test_a_first_sign_in_creates_the_user(client, sso):
    authorize = start(client)
    query = parse_qs(urlsplit(authorize).query)
    # PKCE S256, a state and a nonce, and the portal's exact callback.
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] and query["state"] and query["nonce"]
    assert query["redirect_uri"] == [CALLBACK]

    response = finish(client, approve(authorize, "ada"))

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = signed_in_user(client)
    assert (user.username, user.email, user.first_name) == ("ada@team.example",) * 2 + ("Ada",)
    assert user.is_active
    assert not user.has_usable_password()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_CREATED_BY_SIGN_IN)
    assert event.subject_id == user.pk


def test_new_users_can_wait_for_an_administrator(client, sso, settings):
    settings.OIDC_NEW_USERS_ACTIVE = False

    response = finish(client, approve(start(client), "ada"))

    assert response.status_code == 403
    assert "waits for an administrator to activate it" in response.content.decode()
    assert signed_in_user(client) is None
    assert User.objects.get(email="ada@team.example").is_active is False


def test_it_links_to_the_user_with_that_email(client, sso):
    ben = User.objects.create_user("ben", "ben@team.example", "a-password-of-his-own")

    # The provider spells it Ben@Team.Example.
    response = finish(client, approve(start(client), "ben"))

    assert response.status_code == 302
    assert signed_in_user(client) == ben
    assert User.objects.count() == 1


def test_it_goes_back_where_the_user_was_going(client, sso):
    response = finish(client, approve(start(client, "?next=/keys/new/"), "ada"))
    assert response["Location"] == "/keys/new/"


def test_an_offsite_next_is_dropped(client, sso):
    response = finish(client, approve(start(client, "?next=https://evil.example/"), "ada"))
    assert response["Location"] == "/"


def test_nothing_secret_is_logged(client, sso, caplog):
    caplog.set_level(logging.DEBUG)
    authorize = start(client)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    pending = client.session[f"_state_oidc_{state}"]["data"]
    callback = approve(authorize, "ada")
    code = parse_qs(urlsplit(callback).query)["code"][0]

    finish(client, callback)

    assert signed_in_user(client) is not None
    secrets = [CLIENT_SECRET, code, pending["code_verifier"], pending["nonce"], state]
    assert leaks(caplog.text, secrets) == []


# --- refused sign-ins ------------------------------------------------------------------


def refused(response, words: str, status: int = 400):
    assert response.status_code == status
    page = response.content.decode()
    assert "Sign-in refused" in page
    assert words in page
    return page


def test_a_wrong_state_is_refused(client, sso):
    callback = approve(start(client), "ada")

    response = finish(client, re.sub(r"state=[^&]+", "state=forged-state", callback))

    refused(response, "its state does not match")
    assert signed_in_user(client) is None
    assert not User.objects.exists()


def test_a_callback_from_another_browser_is_refused(client, sso):
    # Started in one browser, finished in another (an attacker's link).
    callback = approve(start(Client()), "ada")

    refused(finish(client, callback), "its state does not match")
    assert signed_in_user(client) is None


def test_an_id_token_with_another_nonce_is_refused(client, sso):
    # The authorize request's nonce swapped on its way to the provider: the code and
    # PKCE still match this sign-in, the ID token's nonce does not.
    authorize = re.sub(r"nonce=[^&]+", "nonce=someone-elses-nonce", start(client))

    page = refused(finish(client, approve(authorize, "ada")), "was not made for this sign-in")

    assert "nonce" in page
    assert signed_in_user(client) is None


def test_a_code_from_another_sign_in_is_refused(client, sso):
    # Two sign-ins started in this browser: the first one's state with the second one's
    # code. PKCE stops it at the provider (the first verifier does not fit the code).
    first = approve(start(client), "ada")
    second = approve(start(client), "ada")
    first_state = parse_qs(urlsplit(first).query)["state"][0]
    second_code = parse_qs(urlsplit(second).query)["code"][0]

    response = client.get("/accounts/sso/callback/", {"state": first_state, "code": second_code})

    refused(response, "Team ID refused the sign-in (invalid_grant)")
    assert signed_in_user(client) is None


def test_an_unverified_email_is_refused(client, sso):
    refused(finish(client, approve(start(client), "una")), "has not verified the email")
    assert not User.objects.exists()


def test_another_domain_is_refused(client, sso):
    page = refused(finish(client, approve(start(client), "eve")), "Accounts of other.example")
    assert "team.example" in page
    assert not User.objects.exists()


def test_an_expired_id_token_is_refused(client, sso):
    callback = approve(start(client), "ada")

    # The provider's ID tokens last 5 minutes; authlib allows 2 minutes of clock skew.
    with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=True):
        response = finish(client, callback)

    refused(response, "has expired")
    assert signed_in_user(client) is None


def test_a_denied_consent_is_refused(client, sso):
    authorize = start(client)
    state = parse_qs(urlsplit(authorize).query)["state"][0]

    response = client.get("/accounts/sso/callback/", {"state": state, "error": "access_denied"})

    refused(response, "Team ID did not let you sign in")


def test_a_link_cannot_put_its_words_on_the_page(client, sso, caplog):
    start(client)  # a sign-in is pending in this browser, but not with this state
    response = client.get(
        "/accounts/sso/callback/",
        {"state": "made-up", "error": "Your account is suspended. Call +1 555 0100"},
    )

    page = refused(response, "its state does not match")
    assert "555 0100" not in page and "555 0100" not in caplog.text


def test_an_error_code_the_provider_may_not_send_is_not_shown(client, sso):
    state = parse_qs(urlsplit(start(client)).query)["state"][0]

    response = client.get("/accounts/sso/callback/", {"state": state, "error": "Call 555 0100"})

    page = refused(response, "Team ID refused the sign-in (an error it did not name)")
    assert "555 0100" not in page


def test_a_superuser_is_not_signed_in_through_the_provider(client, sso):
    User.objects.create_superuser("root", "ada@team.example", "roots-password-1")

    refused(finish(client, approve(start(client), "ada")), "sign in with its password")
    assert signed_in_user(client) is None


def test_addresses_that_are_not_ascii_are_refused(db, settings):
    from attio_portal.accounts import user_for_sign_in
    from attio_portal.sso import SignInRefused

    settings.OIDC_ALLOWED_DOMAINS = ["team.example"]
    User.objects.create_user("admin", "admin@team.example")

    with pytest.raises(SignInRefused, match="letters the portal does not match on"):
        user_for_sign_in({"email": "adm\u0131n@team.example", "email_verified": True})


def test_a_provider_that_cannot_be_reached_gets_a_page_not_an_error(client, sso, settings):
    settings.OIDC_DISCOVERY_URL = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"

    response = client.get("/accounts/sso/")

    assert response.status_code == 400
    assert "Team ID could not be reached" in response.content.decode()


def test_several_users_with_the_email_are_refused(client, sso):
    User.objects.create_user("ada1", "ada@team.example")
    User.objects.create_user("ada2", "ADA@team.example")

    refused(finish(client, approve(start(client), "ada")), "Several portal accounts")
    assert signed_in_user(client) is None


def test_single_sign_on_off_is_not_found(client, db, settings):
    settings.OIDC_DISCOVERY_URL = ""

    assert client.get("/accounts/sso/").status_code == 404
    assert client.get("/accounts/sso/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()


# --- password sign-in switched off ----------------------------------------------------


def test_password_sign_in_off_leaves_only_superusers(client, sso, settings):
    settings.PASSWORD_SIGN_IN = False
    User.objects.create_user("carol", "carol@team.example", "carols-password-1")
    User.objects.create_superuser("root", "root@team.example", "roots-password-1")

    page = client.get("/accounts/login/").content.decode()
    assert "Administrators: sign in with a password" in page

    # Her right password is answered as a wrong one would be: it tells nothing.
    right = client.post("/accounts/login/", {"username": "carol", "password": "carols-password-1"})
    wrong = client.post("/accounts/login/", {"username": "carol", "password": "not-hers-at-all"})
    assert right.status_code == wrong.status_code == 200
    assert "Please enter a correct username" in right.content.decode()
    assert right.context["form"].errors == wrong.context["form"].errors
    assert signed_in_user(client) is None

    root = client.post("/accounts/login/", {"username": "root", "password": "roots-password-1"})
    assert root.status_code == 302
    assert signed_in_user(client).username == "root"


def test_password_sign_in_off_holds_on_the_admins_sign_in_page_too(client, sso, settings):
    settings.PASSWORD_SIGN_IN = False
    User.objects.create_user("staff", "staff@team.example", "staff-password-1", is_staff=True)

    response = client.post(
        "/admin/login/", {"username": "staff", "password": "staff-password-1", "next": "/admin/"}
    )

    assert response.status_code == 200
    assert signed_in_user(client) is None


def test_password_sign_in_off_sends_resets_to_superusers_only(client, sso, settings, mailoutbox):
    settings.PASSWORD_SIGN_IN = False
    User.objects.create_user("carol", "carol@team.example", "carols-password-1")
    User.objects.create_superuser("root", "root@team.example", "roots-password-1")

    client.post("/accounts/password_reset/", {"email": "carol@team.example"})
    client.post("/accounts/password_reset/", {"email": "root@team.example"})

    assert [m.to for m in mailoutbox] == [["root@team.example"]]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"OIDC_DISCOVERY_URL": "https://id.example/.well-known/openid-configuration"},
            "also set OIDC_CLIENT_ID",
        ),
        (
            {
                "OIDC_DISCOVERY_URL": "https://id.example/.well-known/openid-configuration",
                "OIDC_CLIENT_ID": "portal",
            },
            "OIDC_ALLOWED_DOMAINS",
        ),
        ({"PASSWORD_SIGN_IN": "false"}, "PASSWORD_SIGN_IN=false leaves only superusers"),
        (
            {
                "OIDC_DISCOVERY_URL": "https://id.example/.well-known/openid-configuration",
                "OIDC_CLIENT_ID": "portal",
                "OIDC_ALLOWED_DOMAINS": "@team.example",
            },
            "OIDC_ALLOWED_DOMAINS holds email domains",
        ),
        (
            {
                "OIDC_DISCOVERY_URL": "http://id.example/.well-known/openid-configuration",
                "OIDC_CLIENT_ID": "portal",
                "OIDC_ALLOWED_DOMAINS": "team.example",
            },
            "OIDC_DISCOVERY_URL must be an https URL",
        ),
    ],
)
def test_incomplete_sign_in_settings_refuse_to_start(overrides, expected):
    result = run_django(["check"], overrides)
    assert result.returncode != 0
    assert expected in result.stderr

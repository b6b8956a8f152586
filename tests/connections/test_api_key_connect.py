"""Connecting with an Attio workspace API key: validated, confirmed with Attio,
stored sealed, and never echoed back."""

import html

import httpx
import pytest
from django.urls import reverse

from connections.models import AuditEvent, Connection

URL = reverse("connections:connect-api-key")


@pytest.fixture
def signed_in(client, charlie):
    client.force_login(charlie)
    return client


def test_form_page_renders_a_password_input(signed_in):
    page = signed_in.get(URL)
    assert page.status_code == 200
    assert 'type="password"' in page.text
    assert 'name="api_key"' in page.text
    assert 'autocomplete="off"' in page.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Paste your Attio API key; the field is empty."),
        ("   \n\t ", "Paste your Attio API key; the field is empty."),
        (
            " abcdefghijkl",
            "The key has spaces or line breaks before or after it; remove them.",
        ),
        (
            "abcdefghijkl\n",
            "The key has spaces or line breaks before or after it; remove them.",
        ),
        (
            "abcdef ghijkl",
            "The key contains spaces or line breaks; paste it as a single word.",
        ),
        (
            "abcdef\tghijkl",
            "The key contains spaces or line breaks; paste it as a single word.",
        ),
        (
            "abc123xyz",
            "That is too short to be an Attio API key (at least 10 characters).",
        ),
    ],
)
def test_form_shows_each_validation_message_and_calls_nothing(
    signed_in, charlie, fake_attio, value, message
):
    response = signed_in.post(URL, {"api_key": value})

    assert response.status_code == 200
    assert html.escape(message) in response.text
    assert fake_attio.calls == []
    assert not Connection.objects.exists()
    if value.strip():
        assert value.strip() not in response.text


def test_ten_characters_is_long_enough_to_be_checked(signed_in, fake_attio):
    key = fake_attio.add_api_key("acme", token="k" * 10)
    response = signed_in.post(URL, {"api_key": key})
    assert response.status_code == 302
    assert fake_attio.count("self") == 1


def test_valid_key_is_confirmed_with_attio_and_stored_sealed(signed_in, charlie, fake_attio):
    key = fake_attio.add_api_key("acme")

    response = signed_in.post(URL, {"api_key": key})

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert fake_attio.count("self") == 1
    assert fake_attio.last("self").headers["authorization"] == f"Bearer {key}"
    assert fake_attio.count("token") == 0
    connection = Connection.objects.get(owner=charlie)
    acme = fake_attio.workspace("acme")
    assert connection.method == Connection.Method.API_KEY
    assert connection.status == Connection.Status.ACTIVE
    assert connection.workspace_id == acme.id
    assert connection.workspace_name == "Acme"
    assert connection.access_token() == key
    assert key not in connection.access_token_sealed
    assert connection.access_token_sealed.startswith("dev$")
    assert not connection.has_refresh_token
    assert connection.expires_at is None
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.CONNECTED, connection=connection).exists()
    page = signed_in.get(reverse("dashboard")).text
    assert "Connected the Attio workspace “Acme”" in page
    assert key not in page


def test_unknown_key_stores_nothing_and_says_why(signed_in, fake_attio):
    key = "fake_key_nobody_issued_this_one"

    response = signed_in.post(URL, {"api_key": key})

    assert response.status_code == 200
    assert fake_attio.count("self") == 1
    assert "Attio says these credentials are not active." in response.text
    assert not Connection.objects.exists()
    assert key not in response.text


def test_deactivated_key_stores_nothing(signed_in, fake_attio):
    key = fake_attio.add_api_key("acme")
    fake_attio.deactivate(key)
    response = signed_in.post(URL, {"api_key": key})
    assert "not active" in response.text
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 503}, "Could not confirm the connection with Attio"),
        ({"exception": httpx.ReadTimeout}, "Could not confirm the connection"),
        ({"status": 401}, "Attio did not accept these credentials."),
    ],
)
def test_attio_failure_on_self_stores_nothing(signed_in, fake_attio, fault, message):
    key = fake_attio.add_api_key("acme")
    fake_attio.fail_next("self", **fault)

    response = signed_in.post(URL, {"api_key": key})

    assert response.status_code == 200
    assert message in response.text
    assert "Nothing was saved" in response.text or fault.get("status") == 401
    assert not Connection.objects.exists()
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.CONNECTED).exists()
    assert key not in response.text


@pytest.mark.parametrize("body", [["unexpected"], "null"])
def test_self_answer_that_is_not_an_object_stores_nothing_with_a_clear_message(
    signed_in, fake_attio, body
):
    key = fake_attio.add_api_key("acme")
    fake_attio.fail_next(
        "self",
        status=200,
        body=body if not isinstance(body, str) else body.encode(),
        headers={"Content-Type": "application/json"},
    )
    signed_in.raise_request_exception = False

    response = signed_in.post(URL, {"api_key": key})

    assert response.status_code == 200
    assert "Could not confirm the connection with Attio" in response.text
    assert not Connection.objects.exists()
    assert key not in response.text


def test_key_is_not_rendered_back_into_the_input(signed_in, fake_attio):
    key = fake_attio.add_api_key("acme")
    fake_attio.fail_next("self", status=503)

    response = signed_in.post(URL, {"api_key": key})

    assert 'name="api_key"' in response.text
    assert key not in response.text
    assert key[9:21] not in response.text
    assert "value=" not in response.text.split('name="api_key"')[1].split(">")[0]


def test_a_second_key_for_the_same_workspace_replaces_the_first(signed_in, charlie, fake_attio):
    first = fake_attio.add_api_key("acme")
    second = fake_attio.add_api_key("acme")
    signed_in.post(URL, {"api_key": first})
    response = signed_in.post(URL, {"api_key": second}, follow=True)

    assert Connection.objects.filter(owner=charlie).count() == 1
    assert Connection.objects.get(owner=charlie).access_token() == second
    assert "Updated the key for the Attio workspace “Acme”" in response.text


def test_form_requires_sign_in(client, fake_attio, db):
    response = client.post(URL, {"api_key": "fake_key_whatever_it_is"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert fake_attio.calls == []

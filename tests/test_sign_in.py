"""Portal sign-in: good and bad passwords, throttling, sign-out, password flows."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from .conftest import PASSWORD


def sign_in(client, username, password, ip="10.0.0.1"):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_dashboard_requires_sign_in(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_good_password_signs_in_and_shows_dashboard(client, charlie):
    response = sign_in(client, "charlie", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    page = client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert "No Attio workspace connected yet" in page.text
    assert "No API keys yet" in page.text


def test_sign_in_with_email_address(client, charlie):
    response = sign_in(client, "CHARLIE@example.com", PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


def test_bad_password_is_refused_with_a_message(client, charlie):
    response = sign_in(client, "charlie", "wrong password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.text
    assert client.get(reverse("dashboard")).status_code == 302


def test_repeated_failures_lock_the_account_even_with_the_right_password(client, charlie, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        # Each attempt from a different address: the per-account limit must still trip.
        sign_in(client, "charlie", "wrong password", ip=f"10.0.1.{i}")
    response = sign_in(client, "charlie", PASSWORD, ip="10.0.2.1")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.text
    assert client.get(reverse("dashboard")).status_code == 302


def test_failures_count_against_the_account_whatever_its_spelling(client, make_user, settings):
    make_user("alice", email="alice@example.com")
    spellings = ["Alice@Example.com", "alice@example.com", "ALICE@EXAMPLE.COM", "alice"]
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, spellings[i % len(spellings)], "wrong password", ip=f"10.0.4.{i}")
    for name in ["alice", " Alice@example.COM "]:
        response = sign_in(client, name, PASSWORD, ip="10.0.5.1")
        assert response.status_code == 429
    assert client.get(reverse("dashboard")).status_code == 302


def test_failures_for_an_unknown_name_count_once_whatever_its_case(client, db, settings):
    spellings = ["Ghost@Example.com", "ghost@example.com", "GHOST@EXAMPLE.COM"]
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, spellings[i % len(spellings)], "wrong password", ip=f"10.0.6.{i}")
    response = sign_in(client, "gHoSt@example.com", "wrong password", ip="10.0.7.1")
    assert response.status_code == 429


def test_repeated_failures_from_one_address_lock_that_address(client, charlie, make_user, settings):
    dana = make_user("dana")
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"nobody{i}", "wrong password", ip="10.0.3.3")
    response = sign_in(client, dana.username, PASSWORD, ip="10.0.3.3")
    assert response.status_code == 429
    # Another address is unaffected.
    response = sign_in(client, dana.username, PASSWORD, ip="10.0.3.4")
    assert response.status_code == 302


def test_sign_out_requires_post_and_ends_the_session(client, charlie):
    client.force_login(charlie)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_password_change(client, charlie):
    client.force_login(charlie)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase 42",
            "new_password2": "a brand new passphrase 42",
        },
    )
    assert response.status_code == 302
    charlie.refresh_from_db()
    assert charlie.check_password("a brand new passphrase 42")


def test_password_reset_by_email(client, charlie):
    response = client.post(reverse("password_reset"), {"email": "charlie@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["charlie@example.com"]
    link = re.search(r"http://testserver(/accounts/reset/\S+)", message.body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.text
    response = client.post(
        form_page.redirect_chain[-1][0],
        {
            "new_password1": "reset passphrase 99 xyz",
            "new_password2": "reset passphrase 99 xyz",
        },
    )
    assert response.status_code == 302
    charlie.refresh_from_db()
    assert charlie.check_password("reset passphrase 99 xyz")


@pytest.mark.parametrize("name", ["login", "password_reset"])
def test_public_pages_render_with_the_portal_layout(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert "Attio Portal" in response.text
    assert "portal/portal.css" in response.text


def test_admin_can_manage_users(client, staff, charlie):
    client.force_login(staff)
    response = client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 200
    assert "charlie" in response.text

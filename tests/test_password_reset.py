"""Password reset requests are limited per client address and per email address."""

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


def ask_for_reset(client, email, ip="10.0.8.1"):
    return client.post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=ip)


def test_resets_for_one_email_stop_at_the_limit_whatever_its_case_or_address(
    client, charlie, settings
):
    settings.PASSWORD_RESETS_PER_HOUR = 2
    spellings = ["charlie@example.com", "CHARLIE@example.com", "Charlie@Example.com"]
    for i, email in enumerate(spellings):
        response = ask_for_reset(client, email, ip=f"10.0.9.{i}")
        # The same answer every time, sent or not: it says nothing about the limit.
        assert response.status_code == 302
        assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 2
    assert all(message.to == ["charlie@example.com"] for message in mail.outbox)


def test_resets_from_one_address_stop_at_the_limit(client, make_user, settings):
    settings.PASSWORD_RESETS_PER_HOUR = 2
    users = [make_user(f"user{i}") for i in range(3)]
    for user in users:
        response = ask_for_reset(client, user.email, ip="10.0.10.1")
        assert response.status_code == 302
        assert response["Location"] == reverse("password_reset_done")
    assert [m.to for m in mail.outbox] == [[users[0].email], [users[1].email]]

    # Another address, for an email not yet asked for too often, still gets its mail.
    ask_for_reset(client, users[2].email, ip="10.0.10.2")
    assert mail.outbox[-1].to == [users[2].email]


def test_unknown_emails_count_against_the_address_too(client, charlie, settings):
    settings.PASSWORD_RESETS_PER_HOUR = 2
    ask_for_reset(client, "nobody1@example.com")
    ask_for_reset(client, "nobody2@example.com")
    response = ask_for_reset(client, "charlie@example.com")
    assert response.status_code == 302
    assert mail.outbox == []

"""Attio's reason in the reconnect email and the dashboard banner reads as a sentence of
its own, whether or not Attio ended it with a full stop."""

import pytest
from django.core import mail
from django.urls import reverse

from connections import freshness

MESSAGES = [
    pytest.param(
        "Attio says the token is no longer active.",
        "Attio says the token is no longer active. Your",
        id="with-full-stop",
    ),
    pytest.param("Attio answered HTTP 401", "Attio answered HTTP 401. Your", id="without"),
    pytest.param("The grant was revoked!", "The grant was revoked! Your", id="exclamation"),
]


@pytest.mark.parametrize(("message", "sentence"), MESSAGES)
def test_the_email_gives_attios_reason_with_clean_punctuation(bob_connection, message, sentence):
    bob_connection.last_error_message = message
    bob_connection.save()

    assert freshness.notify_needs_reconnect(bob_connection.pk)

    body = " ".join(mail.outbox[0].body.split())
    assert (
        "Attio no longer accepts the portal's access to your workspace “Acme”. "
        f"{sentence} AI assistants can't work in it until you reconnect."
    ) in body
    assert ".)" not in body and ".." not in body and "!." not in body


def test_the_email_without_a_reason_still_reads_right(bob_connection):
    bob_connection.last_error_message = ""
    bob_connection.save()

    assert freshness.notify_needs_reconnect(bob_connection.pk)

    body = " ".join(mail.outbox[0].body.split())
    assert (
        "to your workspace “Acme”. Your AI assistants can't work in it until you reconnect."
    ) in body


@pytest.mark.parametrize(("message", "sentence"), MESSAGES)
def test_the_banner_gives_attios_reason_with_clean_punctuation(
    client, bob, bob_connection, message, sentence
):
    bob_connection.last_error_message = message
    bob_connection.save()
    client.force_login(bob)

    banner = client.get(reverse("dashboard")).text
    banner = " ".join(banner[banner.index('<div class="banner" role="alert">') :].split())

    assert f"Attio no longer accepts its credentials. {sentence} assistants can't" in banner

"""Connecting Attio through OAuth, against the fake Attio."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from connections.models import AuditEvent, Connection


def start(client) -> str:
    response = client.post(reverse("connections:connect"))
    assert response.status_code == 302
    return response["Location"]


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def connect(client, fake, workspace=None, decision="approve"):
    authorize_url = start(client)
    location = fake.approve(authorize_url, workspace=workspace, decision=decision)
    return client.get(callback_path(location))


@pytest.mark.parametrize("shape", ["static", "refreshing"])
def test_full_connect_flow_for_both_token_shapes(client, charlie, fake_attio, shape):
    fake_attio.token_shape = shape
    client.force_login(charlie)
    response = connect(client, fake_attio)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")

    connection = Connection.objects.get(owner=charlie)
    acme = fake_attio.workspace("acme")
    assert connection.status == Connection.Status.ACTIVE
    assert connection.method == Connection.Method.OAUTH
    assert connection.workspace_id == acme.id
    assert connection.workspace_name == acme.name
    assert connection.workspace_slug == acme.slug
    assert connection.scope_list == fake_attio.scopes.split()
    assert fake_attio.token_info(connection.access_token()).workspace_id == acme.id
    if shape == "refreshing":
        assert connection.has_refresh_token
        assert connection.expires_at is not None
    else:
        assert not connection.has_refresh_token
        assert connection.expires_at is None
    assert fake_attio.count("token") == 1
    assert fake_attio.count("self") == 1

    page = client.get(reverse("dashboard"))
    assert acme.name in page.text
    assert "Connected the Attio workspace" in page.text
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.CONNECTED)
    assert event.subject == charlie and event.connection == connection


def test_authorize_url_carries_client_redirect_state_and_s256_challenge(
    client, charlie, fake_attio, settings
):
    client.force_login(charlie)
    url = start(client)
    assert url.startswith(settings.ATTIO_AUTHORIZE_URL)
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [fake_attio.client_id]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{settings.PORTAL_BASE_URL}/connections/callback/"]
    assert len(query["state"][0]) >= 32
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert "scope" not in query
    # The verifier stays on the server: it is not in the URL.
    flow = client.session["attio_oauth_flows"][query["state"][0]]
    assert len(flow["verifier"]) >= 43
    assert flow["verifier"] not in url


def test_extra_authorize_parameters_come_from_settings(client, charlie, fake_attio, settings):
    settings.ATTIO_AUTHORIZE_EXTRA_PARAMS = {"token_level": "user"}
    client.force_login(charlie)
    assert parse_qs(urlsplit(start(client)).query)["token_level"] == ["user"]


def test_two_starts_in_one_session_have_different_states(client, charlie, fake_attio):
    client.force_login(charlie)
    first = parse_qs(urlsplit(start(client)).query)
    second = parse_qs(urlsplit(start(client)).query)
    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


def test_pkce_verifier_is_sent_on_exchange_and_deleted(client, charlie, fake_attio):
    client.force_login(charlie)
    url = start(client)
    state = parse_qs(urlsplit(url).query)["state"][0]
    verifier = client.session["attio_oauth_flows"][state]["verifier"]
    client.get(callback_path(fake_attio.approve(url)))
    assert fake_attio.last("token").form["code_verifier"] == verifier
    assert state not in client.session["attio_oauth_flows"]


def test_callback_response_is_no_store_and_no_referrer(client, charlie, fake_attio):
    client.force_login(charlie)
    response = connect(client, fake_attio)
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"


def rejected(response):
    assert response.status_code == 400
    assert "Attio wasn't connected" in response.text
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    return response.text


def test_callback_rejects_missing_state(client, charlie, fake_attio):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    code = parse_qs(urlsplit(location).query)["code"][0]
    text = rejected(client.get(reverse("connections:callback"), {"code": code}))
    assert "start again" in text
    assert fake_attio.count("token") == 0
    assert not Connection.objects.exists()


def test_callback_rejects_wrong_state(client, charlie, fake_attio):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    code = parse_qs(urlsplit(location).query)["code"][0]
    rejected(client.get(reverse("connections:callback"), {"code": code, "state": "forged"}))
    assert fake_attio.count("token") == 0


def test_callback_rejects_expired_state(client, charlie, fake_attio, time_machine):
    time_machine.move_to("2026-01-05 09:00:00Z", tick=False)
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    time_machine.shift(601)
    text = rejected(client.get(callback_path(location)))
    assert "expired" in text or "doesn't belong" in text
    assert fake_attio.count("token") == 0


def test_callback_accepts_state_just_inside_ten_minutes(client, charlie, fake_attio, time_machine):
    time_machine.move_to("2026-01-05 09:00:00Z", tick=False)
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    time_machine.shift(590)
    assert client.get(callback_path(location)).status_code == 302
    assert Connection.objects.filter(owner=charlie).exists()


def test_callback_rejects_replayed_state(client, charlie, fake_attio):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    assert client.get(callback_path(location)).status_code == 302
    rejected(client.get(callback_path(location)))
    assert fake_attio.count("token") == 1


def test_state_from_another_session_is_rejected(client, charlie, make_user, fake_attio):
    from django.test import Client

    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    # Mallory finishes Charlie's flow in her own session: the code must not land in
    # her account (or Charlie's).
    mallory = Client()
    mallory.force_login(make_user("mallory"))
    rejected(mallory.get(callback_path(location)))
    assert fake_attio.count("token") == 0
    assert not Connection.objects.exists()


def test_code_from_another_users_flow_is_rejected(client, charlie, make_user, fake_attio):
    from django.test import Client

    client.force_login(charlie)
    charlie_location = fake_attio.approve(start(client))
    charlie_code = parse_qs(urlsplit(charlie_location).query)["code"][0]

    mallory = Client()
    mallory.force_login(make_user("mallory"))
    mallory_location = fake_attio.approve(start(mallory))
    mallory_state = parse_qs(urlsplit(mallory_location).query)["state"][0]
    # Mallory injects Charlie's code into her own (valid) state: PKCE refuses it.
    response = mallory.get(
        reverse("connections:callback"), {"code": charlie_code, "state": mallory_state}
    )
    rejected(response)
    assert not Connection.objects.exists()


def test_access_denied_shows_a_clear_page(client, charlie, fake_attio):
    client.force_login(charlie)
    text = rejected(connect(client, fake_attio, decision="deny"))
    assert "You declined access" in text
    assert fake_attio.count("token") == 0


def test_other_error_answer_is_rejected(client, charlie, fake_attio):
    client.force_login(charlie)
    url = start(client)
    state = parse_qs(urlsplit(url).query)["state"][0]
    response = client.get(
        reverse("connections:callback"), {"error": "server_error", "state": state}
    )
    assert "server_error" in rejected(response)
    assert fake_attio.count("token") == 0


def test_wrong_issuer_is_rejected(client, charlie, fake_attio):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    rejected(client.get(callback_path(location) + "&iss=https%3A%2F%2Fevil.example"))
    assert fake_attio.count("token") == 0


def test_matching_issuer_is_accepted(client, charlie, fake_attio, settings):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    response = client.get(callback_path(location) + "&iss=https%3A%2F%2Fapp.attio.com")
    assert response.status_code == 302


def test_token_endpoint_failure_changes_nothing(client, charlie, fake_attio):
    client.force_login(charlie)
    fake_attio.fail_next("token", status=503)
    text = rejected(connect(client, fake_attio))
    assert "Attio did not accept the sign-in" in text
    assert not Connection.objects.exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.CONNECT_FAILED).count() == 1


def test_inactive_token_is_not_stored(client, charlie, fake_attio):
    client.force_login(charlie)
    fake_attio.fail_next("self", status=200, body={"active": False})
    text = rejected(connect(client, fake_attio))
    assert "not active" in text
    assert not Connection.objects.exists()


def test_callback_requires_sign_in(client, db):
    response = client.get(reverse("connections:callback"), {"code": "x", "state": "y"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_connect_without_client_id_explains_what_to_do(client, charlie, settings):
    settings.ATTIO_CLIENT_ID = ""
    client.force_login(charlie)
    page = client.get(reverse("dashboard"))
    assert "ATTIO_CLIENT_ID" in page.text
    assert "Connect Attio</button>" not in page.text
    response = client.post(reverse("connections:connect"), follow=True)
    assert "isn't set up on this portal" in response.text


def test_next_parameter_cannot_redirect_off_site(client, charlie, fake_attio):
    client.force_login(charlie)
    location = fake_attio.approve(start(client))
    response = client.get(callback_path(location) + "&next=https%3A%2F%2Fevil.example")
    assert response["Location"] == reverse("dashboard")

"""Reconnecting an Attio connection: credentials change in place, the workspace is
pinned, and one user holds at most one live connection per workspace."""

from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from connections.models import AuditEvent, Connection, PendingRevocation

BANNER = "needs reconnecting."


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def connect(client, fake, workspace=None):
    response = client.post(reverse("connections:connect"))
    assert response.status_code == 302
    location = fake.approve(response["Location"], workspace=workspace)
    return client.get(callback_path(location))


def reconnect(client, fake, connection, workspace=None):
    response = client.post(reverse("connections:reconnect", args=[connection.pk]))
    assert response.status_code == 302
    location = fake.approve(response["Location"], workspace=workspace)
    return client.get(callback_path(location))


def sealed_state(connection: Connection) -> tuple:
    connection.refresh_from_db()
    return (
        connection.access_token_sealed,
        connection.refresh_token_sealed,
        connection.version,
        connection.status,
        connection.workspace_id,
        connection.workspace_name,
        connection.expires_at,
        connection.last_error_code,
        connection.last_error_message,
    )


@pytest.mark.parametrize("shape", ["static", "refreshing"])
def test_reconnect_updates_credentials_in_place(client, alice, alice_connection, fake_attio, shape):
    fake_attio.token_shape = shape
    old_token = alice_connection.access_token()
    old_version = alice_connection.version
    Connection.objects.filter(pk=alice_connection.pk).update(
        last_error_code="ReadTimeout", last_error_message="Attio timed out"
    )
    client.force_login(alice)

    response = reconnect(client, fake_attio, alice_connection, workspace="acme")

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert Connection.objects.count() == 1
    connection = Connection.objects.get()
    assert connection.pk == alice_connection.pk
    new_token = connection.access_token()
    assert new_token != old_token
    assert fake_attio.token_info(new_token).workspace_id == connection.workspace_id
    assert connection.version == old_version + 1
    assert connection.status == Connection.Status.ACTIVE
    assert connection.last_error_code == ""
    assert connection.last_error_message == ""
    assert connection.has_refresh_token is (shape == "refreshing")
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.RECONNECTED)
    assert event.connection_id == connection.pk
    assert event.subject == alice and event.actor == alice
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.CONNECTED).exists()
    page = client.get(reverse("dashboard"))
    assert "Reconnected the Attio workspace “Acme”" in page.text


def test_reconnect_to_a_different_workspace_is_refused_and_changes_nothing(
    client, alice, alice_connection, fake_attio
):
    before = sealed_state(alice_connection)
    old_token = alice_connection.access_token()
    client.force_login(alice)

    response = reconnect(client, fake_attio, alice_connection, workspace="globex")

    assert response.status_code == 400
    assert "Attio wasn't connected" in response.text
    assert "You chose to reconnect “Acme”" in response.text
    assert "signed you in to “Globex”" in response.text
    assert "Nothing was changed" in response.text
    assert sealed_state(alice_connection) == before
    assert alice_connection.access_token() == old_token
    assert Connection.objects.count() == 1
    assert not AuditEvent.objects.filter(
        kind__in=[AuditEvent.Kind.RECONNECTED, AuditEvent.Kind.CONNECTED]
    ).exists()


def test_reconnect_of_a_needs_reconnect_connection_to_another_workspace_keeps_it(
    client, bob, bob_connection, fake_attio
):
    before = sealed_state(bob_connection)
    client.force_login(bob)

    response = reconnect(client, fake_attio, bob_connection, workspace="globex")

    assert response.status_code == 400
    assert sealed_state(bob_connection) == before
    assert bob_connection.status == Connection.Status.NEEDS_RECONNECT
    assert BANNER in client.get(reverse("dashboard")).text


def test_connecting_the_same_workspace_twice_updates_the_same_row(client, charlie, fake_attio):
    client.force_login(charlie)
    assert connect(client, fake_attio, workspace="acme").status_code == 302
    first = Connection.objects.get(owner=charlie)
    first_token = first.access_token()

    assert connect(client, fake_attio, workspace="acme").status_code == 302

    assert Connection.objects.filter(owner=charlie).count() == 1
    second = Connection.objects.get(owner=charlie)
    assert second.pk == first.pk
    assert second.access_token() != first_token
    assert second.version == first.version + 1
    kinds = list(
        AuditEvent.objects.filter(connection=second).order_by("pk").values_list("kind", flat=True)
    )
    assert kinds == [AuditEvent.Kind.CONNECTED, AuditEvent.Kind.RECONNECTED]


def test_a_user_can_hold_connections_to_two_workspaces(client, charlie, fake_attio):
    client.force_login(charlie)
    assert connect(client, fake_attio, workspace="acme").status_code == 302
    assert connect(client, fake_attio, workspace="globex").status_code == 302

    connections = Connection.objects.filter(owner=charlie).order_by("workspace_name")
    assert [c.workspace_name for c in connections] == ["Acme", "Globex"]
    assert all(c.status == Connection.Status.ACTIVE for c in connections)
    acme, globex = connections
    assert acme.access_token() != globex.access_token()
    assert fake_attio.token_info(acme.access_token()).workspace_id == acme.workspace_id
    assert fake_attio.token_info(globex.access_token()).workspace_id == globex.workspace_id
    page = client.get(reverse("dashboard")).text
    assert "Acme" in page and "Globex" in page


def test_two_users_can_connect_the_same_workspace(
    client, alice, alice_connection, charlie, fake_attio
):
    client.force_login(charlie)
    assert connect(client, fake_attio, workspace="acme").status_code == 302

    mine = Connection.objects.get(owner=charlie)
    assert mine.pk != alice_connection.pk
    assert mine.workspace_id == alice_connection.workspace_id
    assert mine.access_token() != alice_connection.access_token()


def test_dashboard_shows_the_reconnect_banner_for_bob(client, bob, bob_connection):
    client.force_login(bob)
    page = client.get(reverse("dashboard")).text
    assert 'class="banner" role="alert"' in page
    assert "“Acme” needs reconnecting." in page
    assert "Attio says the token is no longer active." in page
    banner_action = reverse("connections:reconnect", args=[bob_connection.pk])
    assert f'action="{banner_action}"' in page


def test_dashboard_shows_no_banner_for_alice(client, alice, alice_connection):
    client.force_login(alice)
    page = client.get(reverse("dashboard")).text
    assert "Acme" in page
    assert BANNER not in page


def test_bob_reconnects_and_the_banner_disappears(client, bob, bob_connection, fake_attio):
    client.force_login(bob)
    old_version = bob_connection.version

    response = reconnect(client, fake_attio, bob_connection, workspace="acme")

    assert response.status_code == 302
    bob_connection.refresh_from_db()
    assert bob_connection.status == Connection.Status.ACTIVE
    assert bob_connection.is_usable
    assert bob_connection.version == old_version + 1
    assert bob_connection.last_error_code == ""
    assert bob_connection.last_error_message == ""
    assert AuditEvent.objects.filter(
        kind=AuditEvent.Kind.RECONNECTED, connection=bob_connection
    ).exists()
    page = client.get(reverse("dashboard")).text
    assert BANNER not in page
    assert 'role="alert"' not in page


def test_reconnect_of_another_users_connection_is_forbidden(
    client, alice_connection, charlie, fake_attio
):
    before = sealed_state(alice_connection)
    client.force_login(charlie)
    response = client.post(reverse("connections:reconnect", args=[alice_connection.pk]))
    assert response.status_code == 403
    assert not client.session.get("attio_oauth_flows")
    assert sealed_state(alice_connection) == before


def test_check_now_on_the_dashboard_records_the_users_address(client, alice, alice_connection):
    client.force_login(alice)
    response = client.post(
        reverse("connections:check", args=[alice_connection.pk]), REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(connection=alice_connection, kind=AuditEvent.Kind.CHECKED)
    assert (event.actor, str(event.ip_address)) == (alice, "203.0.113.9")


def test_reconnecting_revokes_the_replaced_token_at_attio(
    client, alice, alice_connection, fake_attio, worker
):
    old_token = alice_connection.access_token()
    client.force_login(alice)
    with worker():
        assert reconnect(client, fake_attio, alice_connection, workspace="acme").status_code == 302
    new_token = Connection.objects.get().access_token()
    assert fake_attio.token_info(old_token).active is False  # a leaked copy is dead
    assert fake_attio.token_info(new_token).active is True
    assert not PendingRevocation.objects.exists()  # Attio confirmed: no copy kept


def test_a_refused_reconnect_revokes_the_token_it_got(
    client, alice, alice_connection, fake_attio, worker
):
    before = sealed_state(alice_connection)
    globex = fake_attio.workspace("globex").id
    client.force_login(alice)
    with worker():
        response = reconnect(client, fake_attio, alice_connection, workspace="globex")
    assert response.status_code == 400
    assert sealed_state(alice_connection) == before  # the connection is untouched
    assert fake_attio.token_info(alice_connection.access_token()).active is True
    # The token Attio issued for Globex was revoked, not dropped on the floor.
    issued = [t for t in fake_attio.tokens() if t.workspace_id == globex and t.kind == "access"]
    assert issued and not any(t.active for t in issued)
    assert not PendingRevocation.objects.exists()


def test_reconnecting_with_an_attio_api_key_never_revokes_it(
    client, alice, make_connection, fake_attio, worker
):
    from connections.connect import connect_with_api_key

    key_connection = make_connection(alice, "acme", method=Connection.Method.API_KEY)
    key = key_connection.access_token()
    with worker():
        connect_with_api_key(alice, key)
    assert fake_attio.count("revoke") == 0 and not PendingRevocation.objects.exists()


def test_a_reconnect_repairs_a_connection_whose_token_cannot_be_opened(
    client, alice, alice_connection, fake_attio, worker, caplog
):
    # Sealed under a key no longer in the ring: reconnecting is how the user repairs it.
    Connection.objects.filter(pk=alice_connection.pk).update(
        access_token_sealed="retired-key:" + "A" * 40
    )
    client.force_login(alice)
    with worker():
        assert reconnect(client, fake_attio, alice_connection, workspace="acme").status_code == 302
    connection = Connection.objects.get()
    assert fake_attio.token_info(connection.access_token()).active is True
    assert not PendingRevocation.objects.exists()  # nothing it could send to Attio
    assert "can't be decrypted" in caplog.text

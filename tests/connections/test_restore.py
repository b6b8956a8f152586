"""After an admin revokes a connection, the owner sees why and reconnecting restores it
in place (same id, API keys work again); after the owner disconnects, it is gone."""

from urllib.parse import urlsplit

from django.urls import reverse

from connections import services
from connections.models import Connection
from mcp_gateway.models import ApiKey


def reconnect(client, fake, connection, workspace="acme"):
    response = client.post(reverse("connections:reconnect", args=[connection.pk]))
    assert response.status_code == 302, response
    location = fake.approve(response["Location"], workspace=workspace)
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}")


def test_admin_revoked_connection_shows_why_and_reconnect_restores_it(
    client, alice, staff, alice_connection, fake_attio
):
    key, _ = ApiKey.objects.issue(alice, connection=alice_connection, name="laptop")
    services.revoke_connection(alice_connection, by=staff, reason="security review")
    client.force_login(alice)
    page = client.get(reverse("dashboard"))
    assert "An administrator revoked your connection to “Acme”" in page.text
    assert "security review" in page.text

    assert reconnect(client, fake_attio, alice_connection).status_code == 302
    restored = Connection.objects.get(pk=alice_connection.pk)
    assert restored.status == Connection.Status.ACTIVE
    assert restored.revoked_at is None and restored.revoked_reason == ""
    assert restored.access_token()
    key.refresh_from_db()
    assert key.revoked_at is None
    assert "An administrator revoked" not in client.get(reverse("dashboard")).text


def test_connecting_the_workspace_again_also_restores_an_admin_revoked_connection(
    client, alice, staff, alice_connection, fake_attio
):
    services.revoke_connection(alice_connection, by=staff, reason="check")
    client.force_login(alice)
    start = client.post(reverse("connections:connect"))
    location = fake_attio.approve(start["Location"], workspace="acme")
    parts = urlsplit(location)
    client.get(f"{parts.path}?{parts.query}")
    assert Connection.objects.filter(owner=alice).count() == 1
    assert Connection.objects.get().status == Connection.Status.ACTIVE


def test_owner_disconnect_revokes_the_keys_and_is_not_restored(
    client, alice, alice_connection, fake_attio
):
    key, _ = ApiKey.objects.issue(alice, connection=alice_connection, name="laptop")
    client.force_login(alice)
    client.post(reverse("connections:disconnect", args=[alice_connection.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_reason == "connection disconnected"
    page = client.get(reverse("dashboard"))
    assert "No Attio workspace connected yet" in page.text
    # The old connection can't be "reconnected"; connecting again makes a new one.
    assert (
        client.post(reverse("connections:reconnect", args=[alice_connection.pk])).status_code == 404
    )
    start = client.post(reverse("connections:connect"))
    location = fake_attio.approve(start["Location"], workspace="acme")
    parts = urlsplit(location)
    client.get(f"{parts.path}?{parts.query}")
    assert Connection.objects.live().get().pk != alice_connection.pk
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_tool_call_on_an_admin_revoked_connection_says_reconnect(
    alice, staff, alice_connection, fake_attio
):
    from mcp_gateway.tools._call import usable_connection

    services.revoke_connection(alice_connection, by=staff, reason="audit")
    alice_connection.refresh_from_db()
    error = None
    try:
        usable_connection(alice_connection)
    except Exception as e:  # noqa: BLE001 - the ToolError is the subject of the test
        error = str(e)
    assert "An administrator revoked" in error and "(audit)" in error
    assert "Reconnect it at http://127.0.0.1:8000/" in error

"""Disconnecting: local tokens go at once, a task queued on commit asks Attio to revoke,
failures are retried from a sealed pending copy, and nobody else can disconnect your
workspace."""

from unittest import mock

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone

from connections import attio, services, tasks
from connections.crypto import DecryptionError
from connections.models import AuditEvent, Connection, PendingRevocation


@pytest.fixture(autouse=True)
def enqueued():
    """Tasks that would go to Celery are recorded instead of reaching a broker."""
    with (
        mock.patch.object(tasks.revoke_upstream, "delay", autospec=True) as delay,
        mock.patch.object(tasks.revoke_upstream, "apply_async", autospec=True),
        mock.patch.object(tasks.sweep_batch, "apply_async", autospec=True),
    ):
        yield delay


def seconds_until(moment) -> float:
    return (moment - timezone.now()).total_seconds()


def disconnect_url(connection) -> str:
    return reverse("connections:disconnect", args=[connection.pk])


def kinds(connection) -> list[str]:
    return list(
        AuditEvent.objects.filter(connection=connection)
        .order_by("pk")
        .values_list("kind", flat=True)
    )


def assert_destroyed(connection):
    connection.refresh_from_db()
    assert connection.status == Connection.Status.REVOKED
    assert connection.access_token_sealed == ""
    assert connection.refresh_token_sealed == ""
    assert connection.revoked_at is not None
    assert not connection.is_usable
    with pytest.raises(DecryptionError):
        connection.access_token()
    assert connection.refresh_token() is None


def test_get_shows_a_confirmation_page_and_changes_nothing(
    client, alice, alice_connection, fake_attio
):
    client.force_login(alice)
    response = client.get(disconnect_url(alice_connection))
    assert response.status_code == 200
    assert "Disconnect “Acme”?" in response.text
    assert "asks Attio to revoke it" in response.text
    # What happens to the keys: revoke_connection revokes them, and reconnecting won't
    # bring them back.
    assert "Its API keys are revoked for good" in response.text
    assert "stop working until" not in response.text
    assert '<form method="post">' in response.text
    alice_connection.refresh_from_db()
    assert alice_connection.status == Connection.Status.ACTIVE
    assert alice_connection.is_usable
    assert fake_attio.calls == []


@pytest.mark.parametrize("shape", ["static", "refreshing"])
def test_disconnect_revokes_once_at_attio_and_destroys_the_tokens(
    client, alice, make_connection, fake_attio, shape, enqueued, django_capture_on_commit_callbacks
):
    fake_attio.token_shape = shape
    connection = make_connection(alice, "acme")
    token = connection.access_token()
    refresh = connection.refresh_token()
    version = connection.version
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(disconnect_url(connection), follow=True)

    assert response.redirect_chain == [(reverse("dashboard"), 302)]
    assert "Disconnected “Acme”: its token is deleted and its API keys are revoked." in (
        response.text
    )
    # The tokens are gone at once; Attio is not called inside the request but by a task
    # queued once the disconnect committed.
    assert_destroyed(connection)
    assert fake_attio.count("revoke") == 0
    pending = PendingRevocation.objects.get()
    assert enqueued.call_args_list == [mock.call(pending.pk)]

    tasks.revoke_upstream(pending.pk)

    assert fake_attio.count("revoke") == 1
    assert fake_attio.last("revoke").form["token"] == token
    assert fake_attio.token_info(token).active is False
    if refresh:
        assert fake_attio.token_info(refresh).active is False
    assert_destroyed(connection)
    assert connection.version == version + 1
    assert kinds(connection) == [
        AuditEvent.Kind.DISCONNECTED,
        AuditEvent.Kind.UPSTREAM_REVOKED,
    ]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DISCONNECTED)
    assert event.actor == alice and event.subject == alice
    assert event.ip_address == "127.0.0.1"
    assert not PendingRevocation.objects.exists()
    assert "Acme" not in client.get(reverse("dashboard")).text


def test_the_revoke_task_is_queued_only_once_the_disconnect_commits(
    alice, alice_connection, fake_attio, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.revoke_connection(alice_connection, by=alice) is True
        assert_destroyed(alice_connection)
        enqueued.assert_not_called()
    assert len(callbacks) == 1
    # Held for the queued task for a claim's length: the sweep doesn't send a second one.
    pending = PendingRevocation.objects.get()
    assert seconds_until(pending.next_attempt_at) > 60
    callbacks[0]()
    assert enqueued.call_args_list == [mock.call(pending.pk)]
    assert fake_attio.count("revoke") == 0


def test_a_disconnect_while_the_broker_is_down_still_succeeds_and_the_sweep_retries(
    client, alice, alice_connection, fake_attio, enqueued, django_capture_on_commit_callbacks
):
    token = alice_connection.access_token()
    enqueued.side_effect = OSError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(disconnect_url(alice_connection))

    assert response.status_code == 302
    assert_destroyed(alice_connection)
    pending = PendingRevocation.objects.get()
    # Due at once, so the next sweep sends it.
    assert seconds_until(pending.next_attempt_at) <= 0
    enqueued.side_effect = None
    enqueued.reset_mock()
    tasks.sweep_connections()
    assert enqueued.call_args_list == [mock.call(pending.pk)]
    tasks.revoke_upstream(pending.pk)
    assert fake_attio.token_info(token).active is False


def test_disconnected_token_is_inactive_at_attio(alice, alice_connection, fake_attio, worker):
    token = alice_connection.access_token()
    assert attio.get_self(token).active is True
    with worker():
        services.revoke_connection(alice_connection, by=alice)
    assert attio.get_self(token).active is False


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 500}, id="500"),
        pytest.param({"status": 429}, id="429"),
        pytest.param({"exception": httpx.ReadTimeout}, id="timeout"),
        pytest.param({"exception": httpx.ConnectError}, id="connect-error"),
    ],
)
def test_failed_upstream_revoke_still_destroys_local_tokens_and_retries_later(
    alice, alice_connection, fake_attio, fault, worker
):
    token = alice_connection.access_token()
    fake_attio.fail_next("revoke", **fault)

    with worker():
        assert services.revoke_connection(alice_connection, by=alice) is True

    assert_destroyed(alice_connection)
    assert fake_attio.count("revoke") == 1
    assert fake_attio.token_info(token).active is True
    pending = PendingRevocation.objects.get()
    assert pending.connection_id == alice_connection.pk
    assert pending.attempts == 1
    assert pending.last_error
    assert token not in pending.token_sealed
    assert token not in pending.last_error
    assert pending.token() == token
    assert 25 <= seconds_until(pending.next_attempt_at) <= 30
    failed = AuditEvent.objects.get(kind=AuditEvent.Kind.UPSTREAM_REVOKE_FAILED)
    assert failed.detail["gave_up"] is False
    assert failed.detail["attempts"] == 1
    assert kinds(alice_connection) == [
        AuditEvent.Kind.DISCONNECTED,
        AuditEvent.Kind.UPSTREAM_REVOKE_FAILED,
    ]

    # Attio recovers; the retry task, run as a function, finishes the job.
    tasks.revoke_upstream(pending.pk)

    assert fake_attio.count("revoke") == 2
    assert fake_attio.last("revoke").form["token"] == token
    assert fake_attio.token_info(token).active is False
    assert not PendingRevocation.objects.exists()
    assert kinds(alice_connection)[-1] == AuditEvent.Kind.UPSTREAM_REVOKED


def test_retry_backs_off_exponentially(alice, alice_connection, fake_attio, worker):
    fake_attio.fail_next("revoke", status=503, times=4)
    with worker():
        services.revoke_connection(alice_connection, by=alice)
    pending = PendingRevocation.objects.get()
    waits = [round(seconds_until(pending.next_attempt_at))]
    for _ in range(3):
        tasks.revoke_upstream(pending.pk)
        pending.refresh_from_db()
        waits.append(round(seconds_until(pending.next_attempt_at)))
    assert waits == [30, 60, 120, 240]
    assert pending.attempts == 4
    assert fake_attio.count("revoke") == 4


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(400, None, id="400-invalid_request"),
        pytest.param(
            400,
            {"error": "invalid_grant", "error_description": "Unknown token."},
            id="400-invalid_grant",
        ),
        pytest.param(401, None, id="401-invalid_client"),
    ],
)
def test_permanent_upstream_failure_gives_up_and_deletes_the_pending_row(
    alice, alice_connection, fake_attio, status, body, worker
):
    fake_attio.fail_next("revoke", status=status, body=body)

    with worker():
        services.revoke_connection(alice_connection, by=alice)

    assert_destroyed(alice_connection)
    assert fake_attio.count("revoke") == 1
    assert not PendingRevocation.objects.exists()
    failed = AuditEvent.objects.get(kind=AuditEvent.Kind.UPSTREAM_REVOKE_FAILED)
    assert failed.detail["gave_up"] is True
    assert failed.detail["status"] == status
    assert failed.connection_id == alice_connection.pk


def test_reaching_max_attempts_gives_up(alice, alice_connection, fake_attio, settings, worker):
    settings.ATTIO_REVOKE_MAX_ATTEMPTS = 3
    fake_attio.fail_next("revoke", status=503, times=10)

    with worker():
        services.revoke_connection(alice_connection, by=alice)
    pending = PendingRevocation.objects.get()
    assert services.revoke_upstream(pending.pk) is False
    assert PendingRevocation.objects.filter(pk=pending.pk).exists()
    assert services.revoke_upstream(pending.pk) is True

    assert fake_attio.count("revoke") == 3
    assert not PendingRevocation.objects.exists()
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.UPSTREAM_REVOKE_FAILED).order_by("pk")
    assert [e.detail["attempts"] for e in events] == [1, 2, 3]
    assert [e.detail["gave_up"] for e in events] == [False, False, True]
    # A late retry of a row that is gone does nothing.
    tasks.revoke_upstream(pending.pk)
    assert fake_attio.count("revoke") == 3


def test_second_disconnect_is_a_no_op(alice, alice_connection, fake_attio, worker):
    with worker():
        assert services.revoke_connection(alice_connection, by=alice) is True
    events = AuditEvent.objects.count()
    with worker():
        assert services.revoke_connection(alice_connection, by=alice) is False
    assert fake_attio.count("revoke") == 1
    assert AuditEvent.objects.count() == events
    assert_destroyed(alice_connection)


def test_second_disconnect_through_the_page_is_not_found(
    client, alice, alice_connection, fake_attio, worker
):
    client.force_login(alice)
    with worker():
        client.post(disconnect_url(alice_connection))
    assert client.post(disconnect_url(alice_connection)).status_code == 404
    assert client.get(disconnect_url(alice_connection)).status_code == 404
    assert fake_attio.count("revoke") == 1


def test_api_key_connection_is_not_sent_to_the_revoke_endpoint(client, charlie, fake_attio):
    key = fake_attio.add_api_key("acme")
    client.force_login(charlie)
    client.post(reverse("connections:connect-api-key"), {"api_key": key})
    connection = Connection.objects.get(owner=charlie)
    page = client.get(disconnect_url(connection))
    assert "asks Attio to revoke" not in page.text
    assert "delete it in Attio" in page.text

    client.post(disconnect_url(connection))

    assert fake_attio.count("revoke") == 0
    assert not PendingRevocation.objects.exists()
    assert_destroyed(connection)
    assert kinds(connection) == [
        AuditEvent.Kind.CONNECTED,
        AuditEvent.Kind.DISCONNECTED,
    ]


def test_disconnect_of_a_needs_reconnect_connection_still_revokes(
    client, bob, bob_connection, fake_attio, worker
):
    token = bob_connection.access_token()
    client.force_login(bob)
    with worker():
        client.post(disconnect_url(bob_connection))
    assert fake_attio.last("revoke").form["token"] == token
    assert_destroyed(bob_connection)


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_disconnect_url_is_forbidden(
    client, alice_connection, bob, fake_attio, method
):
    version = alice_connection.version
    sealed = alice_connection.access_token_sealed
    client.force_login(bob)

    response = getattr(client, method)(disconnect_url(alice_connection))

    assert response.status_code == 403
    alice_connection.refresh_from_db()
    assert alice_connection.status == Connection.Status.ACTIVE
    assert alice_connection.access_token_sealed == sealed
    assert alice_connection.version == version
    assert fake_attio.count("revoke") == 0
    assert not AuditEvent.objects.exists()
    assert not PendingRevocation.objects.exists()


def test_disconnect_requires_sign_in(client, alice_connection, fake_attio):
    response = client.post(disconnect_url(alice_connection))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    alice_connection.refresh_from_db()
    assert alice_connection.is_usable


def test_revoke_by_someone_else_is_recorded_as_an_admin_revocation(
    alice, alice_connection, staff, fake_attio
):
    services.revoke_connection(alice_connection, by=staff, reason="left the company", ip="10.0.0.1")
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.REVOKED_BY_ADMIN)
    assert event.actor == staff
    assert event.subject == alice
    assert event.reason == "left the company"
    assert str(event.ip_address) == "10.0.0.1"
    assert event.connection_id == alice_connection.pk
    assert event.created_at is not None


def test_sweep_reenqueues_due_pending_revocations_once(
    alice, alice_connection, bob, bob_connection, fake_attio, enqueued, worker
):
    fake_attio.fail_next("revoke", status=503, times=2)
    with worker():
        services.revoke_connection(alice_connection, by=alice)
        services.revoke_connection(bob_connection, by=bob)
    due, later = PendingRevocation.objects.order_by("pk")
    PendingRevocation.objects.filter(pk=due.pk).update(
        next_attempt_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    PendingRevocation.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timezone.timedelta(minutes=5)
    )

    tasks.sweep_connections()

    assert [c.args for c in enqueued.call_args_list] == [(due.pk,)]
    # A second sweep straight after (beat firing twice) does not enqueue it again.
    tasks.sweep_connections()
    assert enqueued.call_count == 1

    # The enqueued task, run as a function, finishes the revocation.
    tasks.revoke_upstream(*enqueued.call_args.args)
    assert not PendingRevocation.objects.filter(pk=due.pk).exists()
    assert PendingRevocation.objects.filter(pk=later.pk).exists()


def test_sweep_with_no_pending_revocation_enqueues_none(db, enqueued):
    tasks.sweep_connections()
    enqueued.assert_not_called()


def test_pending_revocation_outlives_its_connection_row(
    alice, alice_connection, fake_attio, worker
):
    token = alice_connection.access_token()
    fake_attio.fail_next("revoke", status=503)
    with worker():
        services.revoke_connection(alice_connection, by=alice)
    pending = PendingRevocation.objects.get()
    Connection.objects.filter(pk=alice_connection.pk).delete()

    tasks.revoke_upstream(pending.pk)

    assert fake_attio.token_info(token).active is False
    assert not PendingRevocation.objects.exists()

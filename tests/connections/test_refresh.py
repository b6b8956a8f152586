"""Keeping connections fresh: refresh, validation, failure classes, notifications."""

import logging
import threading
from datetime import timedelta
from unittest import mock

import httpx
import pytest
from django.core import mail
from django.db import DatabaseError
from django.utils import timezone

from connections import attio, freshness, services, sweep, tasks
from connections.freshness import Outcome
from connections.models import AuditEvent, Connection, PendingRevocation
from tests.threads import run_together


def expiring(make_connection, owner, *, in_seconds: float, **overrides):
    conn = make_connection(owner, "acme", **overrides)
    conn.expires_at = timezone.now() + timedelta(seconds=in_seconds)
    conn.save()
    return conn


def current_refresh_token(fake, access_token: str) -> str:
    """The refresh token the fake considers current for an access token's grant."""
    info = fake.token_info(access_token)
    live = [
        t for t in fake.tokens() if t.grant_id == info.grant_id and t.kind == "refresh" and t.active
    ]
    assert len(live) == 1
    return live[0].token


# --- refresh ----------------------------------------------------------------------------


def test_expiring_connection_is_refreshed_and_rotated(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=60)
    old_access, old_refresh, version = (
        conn.access_token(),
        conn.refresh_token(),
        conn.version,
    )
    assert freshness.ensure_fresh(conn.pk) == Outcome.REFRESHED
    conn.refresh_from_db()
    assert refreshing_attio.count("refresh") == 1
    assert conn.access_token() != old_access
    assert conn.refresh_token() != old_refresh
    assert conn.refresh_token() == current_refresh_token(refreshing_attio, conn.access_token())
    assert conn.version == version + 1
    assert conn.expires_at > timezone.now() + timedelta(minutes=50)
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESHED).count() == 1


def test_fresh_connection_makes_no_call(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=3600)
    assert freshness.ensure_fresh(conn.pk) == Outcome.FRESH
    assert refreshing_attio.count("refresh") == 0
    assert refreshing_attio.count("self") == 0


def test_missing_refresh_token_in_answer_keeps_the_old_one(
    alice, refreshing_attio, make_connection
):
    conn = expiring(make_connection, alice, in_seconds=60)
    old_refresh = conn.refresh_token()
    refreshing_attio.fail_next(
        "refresh",
        status=200,
        body={
            "access_token": "fake_at_new_without_rt_0123456789",
            "token_type": "Bearer",
        },
    )
    assert freshness.ensure_fresh(conn.pk) == Outcome.REFRESHED
    conn.refresh_from_db()
    assert conn.access_token() == "fake_at_new_without_rt_0123456789"
    assert conn.refresh_token() == old_refresh


def test_missing_expires_in_gets_the_default_lifetime(
    alice, refreshing_attio, make_connection, settings
):
    settings.CONNECTION_DEFAULT_TOKEN_LIFETIME = timedelta(minutes=45)
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.fail_next(
        "refresh",
        status=200,
        body={
            "access_token": "fake_at_no_expiry_0123456789",
            "refresh_token": "fake_rt_x_0123456789",
        },
    )
    before = timezone.now()
    freshness.ensure_fresh(conn.pk)
    conn.refresh_from_db()
    assert conn.expires_at is not None
    assert before + timedelta(minutes=44) < conn.expires_at < before + timedelta(minutes=46)


def test_static_tokens_are_never_refreshed_only_validated(alice, fake_attio, make_connection):
    conn = make_connection(alice, "acme", last_checked_at=timezone.now() - timedelta(days=1))
    assert freshness.ensure_fresh(conn.pk) == Outcome.VALIDATED
    assert fake_attio.count("refresh") == 0
    assert fake_attio.count("self") == 1
    conn.refresh_from_db()
    assert conn.last_checked_at > timezone.now() - timedelta(minutes=1)


def test_token_revoked_at_attio_is_found_within_one_sweep(alice, fake_attio, make_connection):
    conn = make_connection(alice, "acme", last_checked_at=timezone.now() - timedelta(days=1))
    fake_attio.revoke_all()
    tasks.sweep_connections()
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.last_error_code == "inactive"
    assert fake_attio.count("refresh") == 0


# --- failure classes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"exception": httpx.ReadTimeout},
        {"exception": httpx.ConnectError},
        {"status": 500},
        {"status": 503},
        {"status": 429},
    ],
    ids=["timeout", "reset", "500", "503", "429"],
)
def test_transient_failures_keep_credentials_and_status(
    alice, refreshing_attio, make_connection, failure
):
    conn = expiring(make_connection, alice, in_seconds=60)
    sealed, version = conn.access_token_sealed, conn.version
    refreshing_attio.fail_next("refresh", **failure)
    with pytest.raises(attio.AttioError) as raised:
        freshness.ensure_fresh(conn.pk)
    assert not raised.value.permanent
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert conn.access_token_sealed == sealed
    assert conn.version == version
    assert conn.last_error_code
    # The credentials still work: the next attempt succeeds.
    assert freshness.ensure_fresh(conn.pk) == Outcome.REFRESHED


def test_429_retry_after_http_date_is_honoured(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.rate_limit_next("refresh", retry_after=120, http_date=True)
    with pytest.raises(attio.AttioError) as raised:
        freshness.ensure_fresh(conn.pk)
    assert 100 <= raised.value.retry_after <= 121
    assert tasks.retry_delay(0, raised.value.retry_after) >= raised.value.retry_after


def test_retry_delay_backs_off_exponentially_with_jitter():
    delays = [tasks.retry_delay(n) for n in range(5)]
    for n, delay in enumerate(delays):
        assert 10 * 2**n <= delay <= 15 * 2**n
    assert len({tasks.retry_delay(2) for _ in range(20)}) > 1
    assert tasks.retry_delay(30) <= 900


@pytest.fixture
def eager_retries():
    # Celery re-runs a retried task inside apply() only when errors don't propagate.
    from attio_portal.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


def test_task_retries_transient_failures_then_succeeds(
    alice, refreshing_attio, make_connection, eager_retries
):
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.fail_next("refresh", status=503, times=3)
    result = tasks.refresh_connection.apply(args=(conn.pk,))
    assert result.get() == Outcome.REFRESHED
    assert refreshing_attio.count("refresh") == 4


def test_task_gives_up_after_the_retry_limit_and_keeps_the_connection(
    alice, refreshing_attio, make_connection, settings, eager_retries
):
    settings.CONNECTION_REFRESH_MAX_RETRIES = 2
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.fail_next("refresh", status=503, times=10)
    assert tasks.refresh_connection.apply(args=(conn.pk,)).get() == "gave_up"
    assert refreshing_attio.count("refresh") == 3
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert conn.sweep_claimed_at is None


@pytest.mark.parametrize("error", ["invalid_grant", "invalid_client", "unauthorized_client"])
def test_permanent_refresh_errors_need_reconnect(alice, refreshing_attio, make_connection, error):
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.fail_next("refresh", status=400, body={"error": error})
    assert freshness.ensure_fresh(conn.pk) == Outcome.NEEDS_RECONNECT
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.last_error_code == error


def test_401_on_validation_needs_reconnect(alice, fake_attio, make_connection):
    conn = make_connection(alice, "acme")
    fake_attio.fail_next("self", status=401)
    assert freshness.ensure_fresh(conn.pk, validate=True) == Outcome.NEEDS_RECONNECT


def test_after_needs_reconnect_nothing_calls_attio(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=-60)
    refreshing_attio.fail_next("refresh", status=400, body={"error": "invalid_grant"})
    freshness.ensure_fresh(conn.pk)
    calls = len(refreshing_attio.calls)
    for _ in range(3):  # three beat cycles
        tasks.sweep_connections()
    assert freshness.ensure_fresh(conn.pk) == Outcome.SKIPPED
    assert freshness.ensure_fresh(conn.pk, validate=True) == Outcome.SKIPPED
    assert len(refreshing_attio.calls) == calls


def test_late_writer_is_discarded_and_logged(alice, fake_attio, make_connection, caplog):
    conn = make_connection(alice, "acme")
    stale = Connection.objects.get(pk=conn.pk)
    conn.set_credentials(
        access_token="fake_at_newer_0123456789", refresh_token=None, expires_at=None
    )
    conn.save()
    stale.mark_needs_reconnect(code="invalid_grant", message="late loser")
    with caplog.at_level(logging.WARNING):
        assert freshness._save_if_version(stale, stale.version) is False
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert conn.access_token() == "fake_at_newer_0123456789"
    assert "Discarded a late write" in caplog.text


def test_caller_with_a_stale_version_makes_no_call(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=3600)
    seen = conn.version
    conn.set_credentials(
        access_token="fake_at_already_refreshed_0123",
        refresh_token="fake_rt_r_0123456789",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    conn.save()
    assert freshness.ensure_fresh(conn.pk, seen_version=seen) == Outcome.FRESH
    assert refreshing_attio.count("refresh") == 0


def test_refresh_answer_lost_before_commit_ends_in_needs_reconnect(
    alice, refreshing_attio, make_connection
):
    conn = expiring(make_connection, alice, in_seconds=60)
    real = freshness._save_if_version
    calls = []

    def fail_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("connection lost")
        return real(*args, **kwargs)

    with mock.patch.object(freshness, "_save_if_version", side_effect=fail_first):
        assert freshness.ensure_fresh(conn.pk) == Outcome.NEEDS_RECONNECT
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.last_error_code == "refresh_response_lost"
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESH_RESPONSE_LOST).count() == 1
    # Not a retry loop: nothing more goes to Attio.
    tasks.sweep_connections()
    assert refreshing_attio.count("refresh") == 1


# --- notification ----------------------------------------------------------------------


def test_needs_reconnect_notifies_once_per_incident(
    client, alice, fake_attio, make_connection, django_capture_on_commit_callbacks
):
    conn = make_connection(alice, "acme")
    fake_attio.revoke_all()
    with django_capture_on_commit_callbacks(execute=True):
        freshness.ensure_fresh(conn.pk, validate=True)
    with django_capture_on_commit_callbacks(execute=True):
        freshness.ensure_fresh(conn.pk, validate=True)
        tasks.notify_needs_reconnect(conn.pk)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert "Acme" in message.subject
    assert "http://127.0.0.1:8000/" in message.body
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.NEEDS_RECONNECT).count() == 1

    client.force_login(alice)
    page = client.get("/")
    assert "needs reconnecting" in page.text

    # Reconnecting ends the incident; the next one is told again.
    conn.refresh_from_db()
    conn.set_credentials(
        access_token=fake_attio.issue_tokens("acme")["access_token"],
        refresh_token=None,
        expires_at=None,
    )
    conn.mark_active(checked_at=timezone.now())
    conn.save()
    fake_attio.revoke_all()
    with django_capture_on_commit_callbacks(execute=True):
        freshness.ensure_fresh(conn.pk, validate=True)
    assert len(mail.outbox) == 2


def test_admin_sees_needs_reconnect_in_filter_and_audit_log(client, staff, bob_connection):
    client.force_login(staff)
    page = client.get("/admin/connections/connection/", {"status__exact": "needs_reconnect"})
    assert str(bob_connection) in page.text


# --- the sweep -------------------------------------------------------------------------


def test_sweep_enqueues_a_due_connection_once_even_if_beat_fires_twice(
    alice, refreshing_attio, make_connection
):
    conn = expiring(make_connection, alice, in_seconds=60)
    with mock.patch.object(tasks.sweep_batch, "apply_async", autospec=True) as enqueue:
        tasks.sweep_connections()
        tasks.sweep_connections()
    assert [c.args[0] for c in enqueue.call_args_list] == [([conn.pk],)]


def test_sweep_claim_lapses_when_the_task_was_lost(
    alice, refreshing_attio, make_connection, settings, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    conn = expiring(make_connection, alice, in_seconds=60)
    with mock.patch.object(tasks.sweep_batch, "apply_async", autospec=True) as enqueue:
        tasks.sweep_connections()
        time_machine.shift(settings.CONNECTION_SWEEP_CLAIM_TTL + timedelta(seconds=1))
        tasks.sweep_connections()
    assert enqueue.call_count == 2
    assert conn.pk


@pytest.mark.parametrize(("offset", "due"), [(-1, True), (1, False)])
def test_refresh_margin_boundary(
    alice, refreshing_attio, make_connection, settings, time_machine, offset, due
):
    time_machine.move_to("2026-06-01 12:00:00Z", tick=False)
    conn = make_connection(alice, "acme")
    conn.expires_at = (
        timezone.now() + settings.CONNECTION_REFRESH_MARGIN + timedelta(seconds=offset)
    )
    conn.last_checked_at = timezone.now()
    conn.save()
    items = sweep.claim_due_connections()
    assert [i.connection_id for i in items] == ([conn.pk] if due else [])
    if due:
        assert items[0].refresh


def test_sweep_spaces_each_workspace_within_its_budget(settings):
    settings.SWEEP_READS_PER_SECOND = 50
    settings.SWEEP_WRITES_PER_SECOND = 10
    rows = [(i, f"ws{i % 3}", i % 2 == 0) for i in range(600)]
    plan = sweep.plan_sweep(rows)
    assert sorted(i.connection_id for i in plan) == list(range(600))
    for workspace in ("ws0", "ws1", "ws2"):
        for refresh, rate in ((True, 10), (False, 50)):
            offsets = sorted(
                i.offset for i in plan if i.workspace_id == workspace and i.refresh == refresh
            )
            # In any one-second window, at most `rate` calls start.
            for k in range(len(offsets) - rate):
                assert offsets[k + rate] - offsets[k] >= 1.0 - 1e-9


def test_sweep_command_prints_progress_and_summary(alice, fake_attio, make_connection):
    from io import StringIO

    from django.core.management import call_command

    make_connection(alice, "acme", last_checked_at=None)
    make_connection(alice, "globex", last_checked_at=None)
    out = StringIO()
    call_command("sweep_connections", "--concurrency", "1", stdout=out)
    text = out.getvalue()
    assert "2 connections due, 0 revocations to retry." in text
    assert "2/2 done" in text
    assert "Swept 2 connections" in text and "2 validated" in text


def test_sweep_command_does_everything_the_beat_task_does(
    alice, bob, bob_connection, fake_attio, make_connection, worker
):
    """Due connections, due upstream revocations and unsent reconnect notices."""
    from io import StringIO

    from django.core.management import call_command

    due = make_connection(alice, "acme", last_checked_at=None)
    gone = make_connection(alice, "globex")
    token = gone.access_token()
    fake_attio.fail_next("revoke", status=503)
    with worker():
        services.revoke_connection(gone, by=alice)
    PendingRevocation.objects.update(next_attempt_at=timezone.now())
    out = StringIO()

    call_command("sweep_connections", "--concurrency", "1", stdout=out)

    text = out.getvalue()
    assert "1 connection due, 1 revocation to retry." in text
    assert "1 reconnect notice sent, 1 revocation retried, 1 validated" in text
    due.refresh_from_db()
    assert due.last_checked_at is not None
    assert not PendingRevocation.objects.exists()
    assert not fake_attio.token_info(token).active
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    bob_connection.refresh_from_db()
    assert bob_connection.notified_at is not None


def test_a_refused_check_now_records_who_asked(alice, fake_attio, make_connection):
    conn = make_connection(alice, "acme")
    fake_attio.fail_next("self", status=401)
    assert freshness.ensure_fresh(conn.pk, validate=True, by=alice, ip="10.0.0.2") == (
        Outcome.NEEDS_RECONNECT
    )
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.NEEDS_RECONNECT)
    assert event.actor == alice and str(event.ip_address) == "10.0.0.2"


def test_task_names_stay_what_queued_messages_and_beat_use():
    from attio_portal.celery import app

    names = {name for name in app.tasks if name.startswith("connections.")}
    assert names == {
        "connections.tasks.refresh_connection",
        "connections.tasks.sweep_batch",
        "connections.tasks.sweep_connections",
        "connections.tasks.notify_needs_reconnect",
        "connections.tasks.revoke_upstream",
    }


def test_sweep_retries_pending_upstream_revocations(alice, fake_attio, make_connection, worker):
    conn = make_connection(alice, "acme")
    token = conn.access_token()
    fake_attio.fail_next("revoke", status=503)
    with worker():
        services.revoke_connection(conn, by=alice)
    assert PendingRevocation.objects.count() == 1
    PendingRevocation.objects.update(next_attempt_at=timezone.now())
    tasks.sweep_connections()
    assert PendingRevocation.objects.count() == 0
    assert not fake_attio.token_info(token).active


# --- real concurrency (PostgreSQL) -----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_concurrent_refreshers_make_exactly_one_refresh_call(
    alice, refreshing_attio, make_connection
):
    conn = expiring(make_connection, alice, in_seconds=60)
    version = conn.version
    refreshing_attio.delay("refresh", 0.5)

    def refresh(_):
        outcome = freshness.ensure_fresh(conn.pk)
        return outcome, Connection.objects.get(pk=conn.pk).access_token()

    results = run_together(3, refresh)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert refreshing_attio.count("refresh") == 1
    assert sorted(r[0] for r in results) == sorted(
        [Outcome.REFRESHED, Outcome.FRESH, Outcome.FRESH]
    )
    assert len({r[1] for r in results}) == 1
    conn.refresh_from_db()
    assert conn.version == version + 1
    assert conn.refresh_token() == current_refresh_token(refreshing_attio, conn.access_token())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_callers_after_a_401_make_one_refresh(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=3000)
    seen = conn.version
    refreshing_attio.delay("refresh", 0.3)
    results = run_together(50, lambda _: freshness.ensure_fresh(conn.pk, seen_version=seen))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert refreshing_attio.count("refresh") == 1
    assert results.count(Outcome.REFRESHED) == 1
    assert results.count(Outcome.FRESH) == 49


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_revoke_during_an_inflight_refresh_stays_revoked(alice, refreshing_attio, make_connection):
    conn = expiring(make_connection, alice, in_seconds=60)
    refreshing_attio.delay("refresh", 1.0)

    def act(index):
        if index == 0:
            return freshness.ensure_fresh(conn.pk)
        threading.Event().wait(0.3)  # let the refresh take the lock first
        return services.revoke_connection(Connection.objects.get(pk=conn.pk), by=alice)

    results = run_together(2, act)
    assert results == [Outcome.REFRESHED, True]
    conn.refresh_from_db()
    assert conn.status == Connection.Status.REVOKED
    assert conn.access_token_sealed == "" and conn.refresh_token_sealed == ""
    # The token the refresh produced is the one revoked at Attio: nothing resurrected.
    revoked = refreshing_attio.last("revoke")
    assert revoked.status == 204
    assert all(not t.active for t in refreshing_attio.tokens() if t.kind != "api_key")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_enqueue_each_connection_once(alice, fake_attio, make_connection):
    conns = [make_connection(alice, ws, last_checked_at=None) for ws in ("acme", "globex")]
    results = run_together(2, lambda _: [i.connection_id for i in sweep.claim_due_connections()])
    claimed = sorted(pk for r in results for pk in r)
    assert claimed == sorted(c.pk for c in conns)


def test_pacer_keeps_each_workspace_within_its_share(settings):
    import time

    settings.SWEEP_READS_PER_SECOND = 200
    settings.SWEEP_WRITES_PER_SECOND = 50
    pacer = sweep.WorkspacePacer()
    sent = {"acme": [], "globex": []}

    def send(workspace, write):
        pacer.wait(workspace, write=write)
        sent[workspace].append((time.monotonic(), write))

    started = time.monotonic()
    threads = [
        threading.Thread(target=send, args=(ws, i % 5 == 0))
        for i in range(100)
        for ws in ("acme", "globex")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for calls in sent.values():
        reads = sorted(t for t, write in calls if not write)
        writes = sorted(t for t, write in calls if write)
        # 80 reads at 200/s take at least 0.395 s; 20 writes at 50/s at least 0.38 s.
        assert reads[-1] - reads[0] >= 79 / 200 - 0.01
        assert writes[-1] - writes[0] >= 19 / 50 - 0.01
    # The two workspaces don't wait for each other.
    assert time.monotonic() - started < 1.5


def test_sweep_one_paces_before_locking(alice, fake_attio, make_connection, monkeypatch):
    conn = make_connection(alice, "acme", last_checked_at=None)
    waits = []
    monkeypatch.setattr(sweep.pacer, "wait", lambda ws, write: waits.append((ws, write)))
    assert sweep.refresh_connection(conn.pk) == Outcome.VALIDATED
    assert waits == [(conn.workspace_id, False)]

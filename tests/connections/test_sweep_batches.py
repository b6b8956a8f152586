"""The sweep in batches: validations checked without a lock and written together,
refreshes under the row lock, batches fanned out as Celery tasks."""

import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError

from connections import attio, freshness, services, sweep, tasks
from connections.models import AuditEvent, Connection

from .test_refresh import current_refresh_token, expiring, run_together

LONG_AGO = timedelta(hours=2)


def due(make_connection, owner, workspace: str = "acme") -> Connection:
    return make_connection(owner, workspace, last_checked_at=timezone.now() - LONG_AGO)


def sweep_due(concurrency: int = 1):
    """Claim what is due and sweep it; returns (outcomes, connection ids that failed)."""
    items = sweep.claim_due_connections()
    failed = []
    run = sweep.Sweep(concurrency=concurrency, on_transient=lambda pk, error: failed.append(pk))
    return run.run([item.connection_id for item in items]), failed


def during_check(monkeypatch, action):
    """Run `action(token)` while Attio is being asked about a token, then answer."""
    get_self = attio.get_self

    def checking(token):
        action(token)
        return get_self(token)

    monkeypatch.setattr(attio, "get_self", checking)


def test_passed_checks_are_written_in_one_statement(make_user, make_connection, fake_attio):
    conns = [due(make_connection, make_user(f"u{i}")) for i in range(30)]
    started = timezone.now()
    claimed = [item.connection_id for item in sweep.claim_due_connections()]
    run = sweep.Sweep(concurrency=1, on_transient=pytest.fail)
    with CaptureQueriesContext(db_connection) as queries:
        outcomes = run.run(claimed)
    assert outcomes == {"validated": 30}
    assert fake_attio.count("self") == 30
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "connections_connection" in q["sql"]
    ]
    # Every result together; no lock taken, no row read one at a time.
    assert len(writes) == 1, writes
    assert len(queries.captured_queries) <= 3
    assert not any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)
    for conn in conns:
        conn.refresh_from_db()
        assert conn.last_checked_at >= started - timedelta(seconds=1)
        assert conn.sweep_claimed_at is None
        assert conn.status == Connection.Status.ACTIVE


@pytest.mark.parametrize(
    ("method", "outcome"),
    [
        # Revoked at Attio too: Attio refuses the token, and that changes nothing more.
        (Connection.Method.OAUTH, "skipped"),
        # An Attio API key stays valid at Attio: the passed check is discarded.
        (Connection.Method.API_KEY, "validated"),
    ],
)
def test_a_connection_revoked_during_its_check_stays_revoked(
    alice, staff, make_connection, fake_attio, monkeypatch, method, outcome, worker
):
    conn = make_connection(alice, "acme", method=method, last_checked_at=timezone.now() - LONG_AGO)
    checked_before = conn.last_checked_at

    def revoke(token):
        with worker():
            services.revoke_connection(Connection.objects.get(pk=conn.pk), by=staff)

    during_check(monkeypatch, revoke)
    outcomes, _ = sweep_due()
    assert outcomes == {outcome: 1}
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.NEEDS_RECONNECT).exists()
    conn.refresh_from_db()
    assert conn.status == Connection.Status.REVOKED
    assert conn.access_token_sealed == ""
    assert conn.last_checked_at == checked_before
    assert conn.sweep_claimed_at is None


def test_a_refused_check_of_credentials_replaced_meanwhile_changes_nothing(
    alice, make_connection, fake_attio, monkeypatch
):
    conn = due(make_connection, alice)
    fake_attio.fail_next("self", status=401)
    # A reconnect or a refresh elsewhere replaces the credentials while Attio answers.
    during_check(
        monkeypatch,
        lambda token: Connection.objects.filter(pk=conn.pk).update(version=F("version") + 1),
    )
    outcomes, _ = sweep_due()
    assert outcomes == {"skipped": 1}
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert conn.sweep_claimed_at is None
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.NEEDS_RECONNECT).exists()


def test_a_refused_check_needs_reconnect_and_tells_the_owner_once(
    alice, make_connection, fake_attio, django_capture_on_commit_callbacks
):
    conn = due(make_connection, alice)
    fake_attio.fail_next("self", status=401)
    with (
        mock.patch.object(tasks.notify_needs_reconnect, "delay", autospec=True) as notify,
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcomes, _ = sweep_due()
    assert outcomes == {"needs_reconnect": 1}
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.sweep_claimed_at is None
    assert notify.call_args_list == [mock.call(conn.pk)]
    # Nothing calls Attio for it any more.
    assert sweep.claim_due_connections() == []


def test_refreshes_in_a_batch_go_through_the_row_lock(
    alice, bob, refreshing_attio, make_connection, monkeypatch
):
    refreshing = expiring(make_connection, alice, in_seconds=60)
    checked = due(make_connection, bob, "globex")
    waits = []
    monkeypatch.setattr(sweep.pacer, "wait", lambda ws, write: waits.append((ws, write)))
    with mock.patch.object(freshness, "ensure_fresh", wraps=freshness.ensure_fresh) as locked:
        outcomes, _ = sweep_due()
    assert outcomes == {"refreshed": 1, "validated": 1}
    assert locked.call_args_list == [mock.call(refreshing.pk)]
    # Each call waited for its workspace's slot, as a write or as a read.
    assert sorted(waits) == sorted([(refreshing.workspace_id, True), (checked.workspace_id, False)])
    assert refreshing_attio.count("refresh") == 1
    checked.refresh_from_db()
    assert checked.sweep_claimed_at is None


def test_a_transient_failure_in_a_batch_is_retried_alone_with_backoff(
    alice, make_connection, fake_attio
):
    conn = due(make_connection, alice)
    sweep.claim_due_connections()
    fake_attio.fail_next("self", status=503)
    with mock.patch.object(tasks.refresh_connection, "apply_async", autospec=True) as retry:
        outcomes = tasks.sweep_batch([conn.pk])
    assert outcomes == {"failed (transient)": 1}
    ((args,), options) = retry.call_args
    assert args == (conn.pk,) and options["countdown"] >= 10
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert conn.last_error_code
    # Still claimed: the retry owns it now, and the next sweep leaves it alone.
    assert conn.sweep_claimed_at is not None
    assert sweep.claim_due_connections() == []


def test_a_retry_that_cannot_be_queued_releases_the_claim(alice, make_connection, fake_attio):
    conn = due(make_connection, alice)
    sweep.claim_due_connections()
    fake_attio.fail_next("self", status=503)
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with mock.patch.object(tasks.refresh_connection, "apply_async", side_effect=refused):
        tasks.sweep_batch([conn.pk])
    conn.refresh_from_db()
    assert conn.sweep_claimed_at is None
    assert [c.connection_id for c in sweep.claim_due_connections()] == [conn.pk]


def test_sweep_fans_out_batches_in_plan_order(make_user, make_connection, fake_attio, monkeypatch):
    monkeypatch.setattr(sweep, "SWEEP_BATCH_SIZE", 2)
    conns = [due(make_connection, make_user(f"u{i}"), ("acme", "globex")[i % 2]) for i in range(5)]
    with mock.patch.object(tasks.sweep_batch, "apply_async", autospec=True) as enqueue:
        assert tasks.sweep_connections() == 5
    batches = [(c.args[0][0], c.kwargs["countdown"]) for c in enqueue.call_args_list]
    assert [len(ids) for ids, _ in batches] == [2, 2, 1]
    assert sorted(pk for ids, _ in batches for pk in ids) == sorted(c.pk for c in conns)
    # Ids only in the messages, each batch starting at its first connection's slot.
    assert all(isinstance(pk, int) for ids, _ in batches for pk in ids)
    countdowns = [countdown for _, countdown in batches]
    assert countdowns[0] == 0 and countdowns == sorted(countdowns)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_check_holds_no_lock_so_a_revoke_does_not_wait_for_attio(
    alice, staff, make_connection, fake_attio
):
    conn = make_connection(
        alice, "acme", method=Connection.Method.API_KEY, last_checked_at=timezone.now() - LONG_AGO
    )
    sweep.claim_due_connections()
    fake_attio.delay("self", 1.5)
    revoked_after = []

    def act(index):
        if index == 0:
            return sweep.Sweep(concurrency=1, on_transient=print).run([conn.pk])
        time.sleep(0.3)  # the check is under way at Attio
        started = time.monotonic()
        services.revoke_connection(Connection.objects.get(pk=conn.pk), by=staff)
        revoked_after.append(time.monotonic() - started)
        return "revoked"

    results = run_together(2, act)
    assert results[1] == "revoked" and results[0] == {"validated": 1}
    # The revoke did not queue behind the 1.5 s call.
    assert revoked_after[0] < 1.0
    conn.refresh_from_db()
    assert conn.status == Connection.Status.REVOKED
    assert conn.sweep_claimed_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_threaded_sweep_handles_every_connection_once(
    make_user, refreshing_attio, make_connection
):
    refreshing = [expiring(make_connection, make_user(f"r{i}"), in_seconds=60) for i in range(10)]
    validating = [due(make_connection, make_user(f"v{i}"), "globex") for i in range(40)]
    for conn in validating:
        Connection.objects.filter(pk=conn.pk).update(refresh_token_sealed="", expires_at=None)
    refreshing_attio.delay("self", 0.05)
    refreshing_attio.delay("refresh", 0.05)
    threads_before = threading.active_count()
    outcomes, failed = sweep_due(concurrency=8)
    assert outcomes == {"refreshed": 10, "validated": 40} and failed == []
    assert refreshing_attio.count("refresh") == 10
    assert refreshing_attio.count("self") == 40
    assert not Connection.objects.filter(sweep_claimed_at__isnull=False).exists()
    assert sweep.claim_due_connections() == []
    for conn in refreshing:
        conn.refresh_from_db()
        assert conn.refresh_token() == current_refresh_token(refreshing_attio, conn.access_token())
    # The sweep's threads are gone, and with them their database connections.
    assert threading.active_count() == threads_before

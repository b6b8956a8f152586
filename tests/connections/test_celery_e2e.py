"""Real processes: a Celery worker and beat refresh a due connection; a lock holder
that dies does not block anyone."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from connections import freshness
from connections.models import Connection

from ..faults.harness import log_file, start_celery, stop, wait_for

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = db_connection.settings_dict
    host = f"{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{host}/{s['NAME']}"


def service_env(fake_url: str, fake, **extra) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ATTIO_CLIENT_ID": fake.client_id,
        "ATTIO_CLIENT_SECRET": fake.client_secret,
        "ATTIO_TOKEN_URL": f"{fake_url}/oauth/token",
        "ATTIO_REVOKE_URL": f"{fake_url}/oauth/revoke",
        "ATTIO_API_BASE_URL": fake_url,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_and_beat_refresh_a_due_connection(
    alice, refreshing_attio, make_connection, tmp_path
):
    conn = make_connection(alice, "acme")
    conn.expires_at = timezone.now() + timedelta(minutes=2)
    conn.save()
    old_token = conn.access_token()
    with refreshing_attio.serve() as fake_url:
        env = service_env(
            fake_url,
            refreshing_attio,
            CONNECTION_SWEEP_INTERVAL_SECONDS="1",
            # A queue of its own, so nothing else on the broker interferes.
            CELERY_TASK_DEFAULT_QUEUE=f"e2e-{os.getpid()}",
        )
        queue = env["CELERY_TASK_DEFAULT_QUEUE"]
        with log_file(tmp_path / "celery.log") as log:
            worker = start_celery("worker", env, log, queue=queue)
            beat = start_celery("beat", env, log, queue=queue, schedule=tmp_path / "beat-schedule")
            try:
                wait_for(lambda: Connection.objects.get(pk=conn.pk).version > 1, 60, interval=0.5)
            finally:
                stop(beat)
                stop(worker)
            log.seek(0)
            output = log.read()
    conn.refresh_from_db()
    assert conn.version == 2, output
    assert conn.access_token() != old_token
    assert refreshing_attio.count("refresh") == 1
    assert conn.expires_at > timezone.now() + timedelta(minutes=30)
    assert "sweep_connections" in output


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lock_holder_killed_before_calling_attio_blocks_no_one(
    alice, refreshing_attio, make_connection
):
    conn = make_connection(alice, "acme")
    conn.expires_at = timezone.now() + timedelta(minutes=1)
    conn.save()
    holder = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "shell",
            "--no-imports",
            "-c",
            "import sys, time\n"
            "from django.db import transaction\n"
            "from connections.models import Connection\n"
            "with transaction.atomic():\n"
            f"    Connection.objects.select_for_update().get(pk={conn.pk})\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
        ],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcome = {}

        def refresh():
            try:
                outcome["value"] = freshness.ensure_fresh(conn.pk)
            finally:
                db_connection.close()

        waiter = threading.Thread(target=refresh)
        waiter.start()
        time.sleep(1)
        assert waiter.is_alive(), "the second caller should wait for the lock"
        assert refreshing_attio.count("refresh") == 0
        holder.send_signal(signal.SIGKILL)
        waiter.join(timeout=10)
        assert not waiter.is_alive(), "the second caller hung after the holder died"
    finally:
        holder.kill()
        holder.wait()
    assert outcome["value"] == freshness.Outcome.REFRESHED
    assert refreshing_attio.count("refresh") == 1
    assert Connection.objects.get(pk=conn.pk).status == Connection.Status.ACTIVE

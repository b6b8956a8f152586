"""SIGKILL the Celery worker in the middle of a sweep; a new worker finishes the job.

200 due connections across 5 workspaces (100 tokens to refresh, 100 to validate), a
fake Attio with latency, a real worker on the environment's broker (Redis in CI). While
the worker is busy, every new Attio call is held unanswered (and not applied), and the
worker's whole process group is killed: tasks running, tasks reserved, all gone at once.
A new worker then picks up what is left.

The sweep claims each connection for CONNECTION_SWEEP_CLAIM_TTL (10 minutes, not
configurable) and the Redis transport hands a dead worker's reserved tasks back only after
its visibility timeout (1 hour), so nothing is retried by itself within a test's time.
The test re-runs the sweep as it would run once the claims lapse: `claim_due_connections`
with the clock moved past the claim TTL, fanned out to the new worker as the sweep task
does. Then every connection must be in the right state: each refreshed exactly once (a
second refresh would have been refused: the fake's refresh tokens are single-use),
each validated, none left claimed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from attio_portal.celery import app as celery_app
from connections import sweep
from connections.models import Connection
from tests.fake_attio import FakeAttio

from ..connections.test_celery_e2e import service_env
from .harness import kill_group, log_file, read_log, start_celery, stop, wait_for

WORKSPACES = 5
PER_WORKSPACE = 40  # half refresh, half validate
LATENCY = 0.05


def workspaces() -> list[dict[str, str]]:
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://faults.test/ws/{i}")),
            "name": f"Kill {i}",
            "slug": f"kill-{i}",
        }
        for i in range(WORKSPACES)
    ]


def make_connections(fake: FakeAttio) -> tuple[dict[int, str], dict[int, str]]:
    """Due connections; returns {pk: refresh token} and {pk: API key}."""
    now = timezone.now()
    users = [
        get_user_model().objects.create_user(f"k{i}", f"k{i}@example.com", "x")
        for i in range(PER_WORKSPACE)
    ]
    to_refresh, to_validate = {}, {}
    for ws in fake.workspaces:
        for i, user in enumerate(users):
            refresh = i % 2 == 0
            connection = Connection.objects.create(
                owner=user,
                method=Connection.Method.OAUTH if refresh else Connection.Method.API_KEY,
                workspace_id=ws.id,
                workspace_name=ws.name,
                workspace_slug=ws.slug,
                scopes=fake.scopes,
                # Refresh: expiring within the margin. Validate: checked long ago.
                last_checked_at=now if refresh else now - timedelta(hours=2),
            )
            if refresh:
                tokens = fake.issue_tokens(ws.slug)
                connection.set_credentials(
                    access_token=tokens["access_token"],
                    refresh_token=tokens["refresh_token"],
                    expires_at=now + timedelta(minutes=3),
                )
                to_refresh[connection.pk] = tokens["refresh_token"]
            else:
                key = fake.add_api_key(ws.slug)
                connection.set_credentials(access_token=key, refresh_token=None, expires_at=None)
                to_validate[connection.pk] = key
            connection.save()
    return to_refresh, to_validate


def progress(t0, to_refresh) -> tuple[set[int], set[int]]:
    """(refreshed, validated) connection ids."""
    refreshed = set(
        Connection.objects.filter(pk__in=to_refresh, version__gt=1).values_list("pk", flat=True)
    )
    validated = set(
        Connection.objects.exclude(pk__in=to_refresh)
        .filter(last_checked_at__gt=t0)
        .values_list("pk", flat=True)
    )
    return refreshed, validated


def answered(fake: FakeAttio) -> tuple[Counter, Counter]:
    """Successful refreshes by refresh token, successful validations by token."""
    refreshes = Counter(
        c.form["refresh_token"] for c in fake.calls_to("refresh") if c.status == 200
    )
    checks = Counter(
        c.headers["authorization"].removeprefix("Bearer ")
        for c in fake.calls_to("self")
        if c.status == 200
    )
    return refreshes, checks


def clean_broker(queue: str) -> None:
    """Drop our queue, its bindings and the dead worker's unacknowledged tasks."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for folder in {options["data_folder_in"], options["data_folder_out"]}:
            for message in Path(folder).glob(f"*.{queue}.msg"):
                message.unlink(missing_ok=True)
        (Path(options["control_folder"]) / f"{queue}.exchange").unlink(missing_ok=True)
        return
    if not url.startswith("redis"):
        return
    import redis

    r = redis.Redis.from_url(url)
    for tag, raw in r.hgetall("unacked").items():
        try:
            _, _, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key == queue:
            r.hdel("unacked", tag)
            r.zrem("unacked_index", tag)
    r.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_killed_midway_ends_with_every_connection_refreshed_or_validated_once(
    tmp_path, real_broker
):
    fake = FakeAttio(
        workspaces=workspaces(), token_shape="refreshing", latency=LATENCY, server_hang_seconds=120
    )
    to_refresh, to_validate = make_connections(fake)
    total = len(to_refresh) + len(to_validate)
    t0 = timezone.now()
    queue = f"faults-kill-{os.getpid()}"
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    worker = None
    try:
        with fake.serve() as fake_url, log_file(logs[0]) as log1, log_file(logs[1]) as log2:
            env = service_env(
                fake_url,
                fake,
                CELERY_TASK_DEFAULT_QUEUE=queue,
                # Held calls must still be waiting when the worker dies.
                ATTIO_HTTP_TIMEOUT_SECONDS="120",
            )
            worker = start_celery("worker", env, log1, queue=queue, concurrency=4)
            celery_app.send_task("connections.tasks.sweep_connections", queue=queue)

            # Let the worker get through about a third of the sweep.
            def a_third_done():
                refreshed, validated = progress(t0, to_refresh)
                return len(refreshed) + len(validated) >= total // 3

            assert wait_for(a_third_done, 90), read_log(logs[0])
            # From now on Attio holds every call without carrying it out; wait until
            # every answer Attio already gave has been stored, then kill.
            fake.chaos(1.0, kinds=["timeout"], after_apply=0.0)
            time.sleep(LATENCY + 1.0)  # calls already past the door finish meanwhile

            def settled():
                refreshed, validated = progress(t0, to_refresh)
                refreshes, checks = answered(fake)
                return (
                    sum(refreshes.values()) == len(refreshed)
                    and sum(checks.values()) == len(validated)
                    and fake.chaos_counts()["timeout"] >= 1
                )

            assert wait_for(settled, 20), read_log(logs[0])
            kill_group(worker)
            held = fake.chaos_counts()["timeout"]
            fake.chaos_off()
            refreshed, validated = progress(t0, to_refresh)
            left = set(to_refresh) | set(to_validate)
            left -= refreshed | validated
            # Killed in the middle: some work done, some held at Attio, the rest waiting.
            assert refreshed and validated and left and held >= 1
            claimed = set(
                Connection.objects.filter(sweep_claimed_at__isnull=False).values_list(
                    "pk", flat=True
                )
            )
            assert claimed == left
            killed = f"killed after {len(refreshed)} refreshed, {len(validated)} validated"
            killed += f"; {held} calls held at Attio, {len(left)} connections left"

            # A new worker, and the sweep as it runs once the claims have lapsed.
            worker = start_celery("worker", env, log2, queue=queue, concurrency=4)
            later = timezone.now() + settings.CONNECTION_SWEEP_CLAIM_TTL + timedelta(seconds=5)
            items = sweep.claim_due_connections(now=later)
            assert {item.connection_id for item in items} == left
            for offset, connection_ids in sweep.sweep_batches(items):
                celery_app.send_task(
                    "connections.tasks.sweep_batch",
                    args=(connection_ids,),
                    queue=queue,
                    countdown=offset,
                )

            def all_done():
                refreshed, validated = progress(t0, to_refresh)
                return (
                    len(refreshed) + len(validated) == total
                    and not Connection.objects.filter(sweep_claimed_at__isnull=False).exists()
                )

            recovering = time.monotonic()
            done = wait_for(all_done, 120)
            print(f"{killed}; a new worker finished them in {time.monotonic() - recovering:.1f} s")
            stop(worker)
            worker = None
            assert done, read_log(logs[1])
    finally:
        stop(worker)
        clean_broker(queue)

    # Every connection ended active, unclaimed, without an error...
    rows = {c.pk: c for c in Connection.objects.all()}
    assert len(rows) == total
    bad = [
        (c.pk, c.status, c.last_error_code)
        for c in rows.values()
        if c.status != Connection.Status.ACTIVE or c.last_error_code or c.sweep_claimed_at
    ]
    assert bad == []
    # ...refreshed exactly once (version 1 -> 2, a fresh expiry), or validated.
    assert Counter(rows[pk].version for pk in to_refresh) == {2: len(to_refresh)}
    assert all(rows[pk].expires_at > timezone.now() + timedelta(minutes=30) for pk in to_refresh)
    assert Counter(rows[pk].version for pk in to_validate) == {1: len(to_validate)}
    assert all(rows[pk].last_checked_at > t0 for pk in to_validate)
    # At Attio: each refresh token was redeemed once and never refused; each key was
    # checked successfully once.
    refreshes, checks = answered(fake)
    assert refreshes == Counter(to_refresh.values())
    assert [c.status for c in fake.calls_to("refresh") if c.status not in (200, None)] == []
    assert checks == Counter(to_validate.values())

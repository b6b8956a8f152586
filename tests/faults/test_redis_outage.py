"""Redis (the Celery broker) goes away for a while.

The portal and the gateway do not need the broker to answer: sign-in page, /healthz
(503, naming the broker), MCP tools/list and whoami keep working; when Redis is back
on the same port the sweep resumes by itself and /healthz is 200 again. Each test
runs a redis-server of its own, so stopping it touches nothing else.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone
from kombu.exceptions import OperationalError

from connections import sweep, tasks
from connections.models import Connection
from mcp_gateway.models import ApiKey
from tests.conftest import PASSWORD

from ..connections.test_celery_e2e import service_env
from .harness import (
    RedisServer,
    free_port,
    log_file,
    mcp_session,
    read_log,
    sign_in,
    start_celery,
    start_uvicorn,
    stop,
    wait_for,
    wait_until_serving,
)

OUTAGE = 30.0
SWEEP_INTERVAL = 2
# Longest a page or tool call may take while the broker is away (healthz waits up to 2 s
# for the broker).
SLOWEST_ANSWER = 6.0

needs_redis = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"),
    reason="the portal's broker here is not Redis (CI sets CELERY_BROKER_URL=redis://...)",
)


def timed(fn):
    started = time.monotonic()
    try:
        return fn(), time.monotonic() - started
    except Exception as e:
        return e, time.monotonic() - started


def healthz(base: str):
    answer = httpx.get(f"{base}/healthz", timeout=10)
    return answer.status_code, answer.json()


def gateway_probe(base: str, key: str):
    async def body(client):
        listed = await client.list_tools()
        me = await client.call_tool("whoami", {})
        return len(listed.tools), me.is_error, (me.structured_content or {}).get("workspace_name")

    return async_to_sync(mcp_session)(f"{base}/mcp", key, body)


@contextlib.contextmanager
def service_on_private_redis(fake_attio, tmp_path):
    """The portal's web process, serving, on a Redis the test can stop and start, with
    the fake Attio served. Yields `base`, `redis`, `logs` (paths) and
    `start_worker_and_beat()`; every process is stopped on leaving."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "beat")}
    processes = []
    with (
        RedisServer(tmp_path / "redis.log") as redis,
        fake_attio.serve() as fake_url,
        log_file(logs["web"]) as web_log,
        log_file(logs["worker"]) as worker_log,
        log_file(logs["beat"]) as beat_log,
    ):
        env = service_env(
            fake_url,
            fake_attio,
            PORTAL_BASE_URL=base,
            CELERY_BROKER_URL=redis.url,
            CONNECTION_SWEEP_INTERVAL_SECONDS=str(SWEEP_INTERVAL),
        )

        def start_worker_and_beat():
            processes.append(start_celery("worker", env, worker_log, queue="celery"))
            schedule = tmp_path / "beat-schedule"
            processes.append(start_celery("beat", env, beat_log, queue="celery", schedule=schedule))

        try:
            web = start_uvicorn(env, port, web_log, workers=1)
            processes.append(web)
            wait_until_serving(base, web)
            yield SimpleNamespace(
                base=base, redis=redis, logs=logs, start_worker_and_beat=start_worker_and_beat
            )
        finally:
            for process in processes:
                stop(process)


@needs_redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_while_redis_is_down_portal_and_gateway_answer_and_the_sweep_resumes_after(
    fake_attio, alice, alice_connection, make_user, make_connection, tmp_path, real_broker
):
    _, key = ApiKey.objects.issue(alice, connection=alice_connection, name="outage")
    long_ago = timezone.now() - timedelta(hours=2)
    due = make_connection(make_user("erin"), "globex", last_checked_at=long_ago)
    with service_on_private_redis(fake_attio, tmp_path) as service:
        base, redis, logs = service.base, service.redis, service.logs
        service.start_worker_and_beat()
        assert healthz(base)[0] == 200

        def validated_since(moment):
            def check():
                due.refresh_from_db()
                return due.last_checked_at > moment

            return check

        # The sweep runs: the due connection is validated.
        assert wait_for(validated_since(long_ago), 60), read_log(logs["worker"])

        redis.stop()
        down_at = time.monotonic()
        time.sleep(SWEEP_INTERVAL + 1)  # a sweep already running finishes first
        Connection.objects.filter(pk=due.pk).update(last_checked_at=long_ago)
        made_due = timezone.now()
        probes = []
        while time.monotonic() - down_at < OUTAGE:
            probes.append(
                (
                    timed(lambda: httpx.get(f"{base}/accounts/login/", timeout=10).status_code),
                    timed(lambda: healthz(base)),
                    timed(lambda: gateway_probe(base, key)),
                )
            )
            time.sleep(1)
        due.refresh_from_db()
        checked_during_outage = due.last_checked_at
        redis.start()
        up_at = time.monotonic()
        resumed = wait_for(validated_since(made_due), 90)
        resumed_after = time.monotonic() - up_at
        healthy_again = wait_for(lambda: healthz(base)[0] == 200, 30)
    output = "\n".join(f"--- {name}\n{read_log(path)}" for name, path in logs.items())
    slowest = max(max(t for _, t in probe) for probe in probes)
    print(
        f"{len(probes)} probes during a {OUTAGE:.0f} s outage, slowest {slowest:.2f} s; "
        f"sweep resumed {resumed_after:.1f} s after Redis came back"
    )

    # During the outage every page and call was answered, quickly and as it should be.
    assert len(probes) >= 5
    for (login, t1), (health, t2), (gateway, t3) in probes:
        assert login == 200
        assert health == (
            503,
            {"status": "unavailable", "checks": {"database": "ok", "broker": "unavailable"}},
        )
        assert gateway[0] > 10 and gateway[1:] == (False, "Acme"), gateway
        assert max(t1, t2, t3) < SLOWEST_ANSWER, (t1, t2, t3)
    # Nothing was validated while the broker was away...
    assert checked_during_outage < made_due
    # ...and the sweep picked up again once it was back.
    assert resumed, f"no sweep within 90 s of Redis coming back\n{output}"
    assert due.status == Connection.Status.ACTIVE and due.sweep_claimed_at is None
    assert resumed_after < 60
    assert healthy_again


@needs_redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_found_dead_while_redis_is_down_gets_a_clear_answer_and_its_notice(
    fake_attio, make_user, make_connection, tmp_path, real_broker
):
    """Finding a dead token queues the owner's email; the broker being away must not turn
    that into a crash for the caller, nor lose the email."""
    frank = make_user("frank")
    in_gateway = make_connection(frank, "acme")
    _, key = ApiKey.objects.issue(frank, connection=in_gateway, name="outage")
    grace = make_user("grace")
    # The tests hash passwords with MD5, which the portal's own process doesn't accept.
    grace.password = PBKDF2PasswordHasher().encode(PASSWORD, "faults-salt", iterations=1000)
    grace.save(update_fields=["password"])
    in_portal = make_connection(grace, "globex")
    ada = fake_attio.record_id("people", "Ada Lovelace", workspace="acme")
    with service_on_private_redis(fake_attio, tmp_path) as service:
        base, redis, logs = service.base, service.redis, service.logs
        browser = sign_in(base, "grace", PASSWORD)
        redis.stop()
        # Attio no longer accepts either token.
        fake_attio.deactivate(in_gateway.access_token())
        fake_attio.deactivate(in_portal.access_token())

        async def get_record(client):
            return await client.call_tool("get_record", {"object": "people", "record_id": ada})

        answer, gateway_seconds = timed(
            lambda: async_to_sync(mcp_session)(f"{base}/mcp", key, get_record)
        )
        checked, portal_seconds = timed(
            lambda: browser.post(
                f"/connections/{in_portal.pk}/check/",
                headers={"X-CSRFToken": browser.cookies["csrftoken"]},
            )
        )
        redis.start()
        service.start_worker_and_beat()

        def notified():
            return not Connection.objects.filter(
                pk__in=[in_gateway.pk, in_portal.pk], notified_at__isnull=True
            ).exists()

        wait_for(notified, 20)
    text = " ".join(getattr(b, "text", "") for b in getattr(answer, "content", []))
    problems = []
    if "needs to be reconnected" not in text:
        problems.append(f"gateway answered {text or answer!r} in {gateway_seconds:.1f} s")
    if not isinstance(checked, httpx.Response) or checked.status_code != 302:
        status = getattr(checked, "status_code", checked)
        problems.append(f"'Check now' answered {status} in {portal_seconds:.1f} s")
    for connection in (in_gateway, in_portal):
        connection.refresh_from_db()
        if connection.status != Connection.Status.NEEDS_RECONNECT:
            problems.append(f"connection {connection.pk} is {connection.status}")
        if connection.notified_at is None:
            problems.append(f"the owner of connection {connection.pk} was never notified")
    assert problems == [], "\n".join(problems) + "\n" + read_log(logs["web"], tail=3000)


@pytest.mark.django_db
def test_a_sweep_that_loses_the_broker_midway_leaves_no_connection_claimed(
    make_user, make_connection, monkeypatch
):
    """If Redis goes away while the sweep fans out, the connections whose task was not
    sent must not stay claimed (for CONNECTION_SWEEP_CLAIM_TTL, 10 minutes)."""
    long_ago = timezone.now() - timedelta(hours=2)
    due = [make_connection(make_user(f"s{i}"), "acme", last_checked_at=long_ago) for i in range(5)]
    sent = []

    def apply_async(args, countdown=None, **options):
        if len(sent) == 2:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.extend(args[0])

    monkeypatch.setattr(sweep, "SWEEP_BATCH_SIZE", 1)
    monkeypatch.setattr(tasks.sweep_batch, "apply_async", apply_async)
    with contextlib.suppress(OperationalError):
        tasks.sweep_connections()
    assert len(sent) == 2
    claimed = set(
        Connection.objects.filter(sweep_claimed_at__isnull=False).values_list("pk", flat=True)
    )
    stranded = claimed - set(sent)
    assert stranded == set(), (
        f"{len(stranded)} of {len(due)} due connections stay claimed with no task queued; "
        f"the sweep leaves them alone for {settings.CONNECTION_SWEEP_CLAIM_TTL}"
    )

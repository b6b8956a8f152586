"""The gateway under load while the fake Attio fails 20% of calls at random.

Two uvicorn workers on PostgreSQL, 20 MCP SDK clients over real HTTP for 15 seconds,
reads (whoami, get_record, query_records) and writes (create_note), with the fake Attio
(served from this process) injecting timeouts, connection resets, 500s and 429s; 70% of
the timeouts and resets come after the request was carried out (the answer is lost).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from asgiref.sync import async_to_sync

from connections.models import Connection
from mcp_gateway.models import ApiKey, ToolCall

from ..connections.test_celery_e2e import service_env
from .harness import (
    RATE_STEP,
    WRITE_STEP,
    error_problem,
    free_port,
    log_file,
    read_log,
    run_clients,
    start_uvicorn,
    stop,
    wait_until_serving,
)

CLIENTS = 20
DURATION = 15.0
CHAOS_RATE = 0.2
CHAOS_ENDPOINTS = {"self", "records.get", "records.query", "notes.create"}
# The gateway's Attio timeout in the workers (ATTIO_HTTP_TIMEOUT_SECONDS), and how long
# the fake keeps a "timed out" request hanging: longer, so the gateway gives up first.
ATTIO_TIMEOUT = 1.0
HANG = 3.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_call_gets_a_result_or_a_clear_tool_error_and_no_write_is_lost_or_doubled(
    fake_attio, make_user, make_connection, tmp_path
):
    fake = fake_attio
    fake.server_hang_seconds = HANG
    users = [make_user(f"load{i}") for i in range(4)]
    connections = [make_connection(u, ("acme", "globex")[i % 2]) for i, u in enumerate(users)]
    keys = [ApiKey.objects.issue(c.owner, connection=c, name="load")[1] for c in connections]
    workspace_of_client = [connections[i % len(keys)].workspace_name for i in range(CLIENTS)]
    ada = {
        ws.name: fake.record_id("people", "Ada Lovelace", workspace=ws.slug)
        for ws in fake.workspaces
    }
    rngs = [random.Random(i) for i in range(CLIENTS)]

    def next_call(i: int, n: int) -> tuple[str, dict]:
        record = {"object": "people", "record_id": ada[workspace_of_client[i]]}
        roll = rngs[i].random()
        if roll < 0.15:
            return "whoami", {}
        if roll < 0.45:
            return "get_record", record
        if roll < 0.6:
            return "query_records", {"object": "people", "limit": 5}
        return "create_note", {**record, "title": f"chaos c{i} n{n}", "content": "load"}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake.serve(nodelay=True) as fake_url, log_file(tmp_path / "uvicorn.log") as log:
        env = service_env(
            fake_url,
            fake,
            PORTAL_BASE_URL=base,
            ATTIO_HTTP_TIMEOUT_SECONDS=str(ATTIO_TIMEOUT),
            MCP_RATE_LIMIT_PER_MINUTE="1000000",
            LOG_LEVEL="WARNING",
        )
        web = start_uvicorn(env, port, log)
        try:
            wait_until_serving(base, web)
            fake.chaos(CHAOS_RATE, endpoints=CHAOS_ENDPOINTS, seed=2024, after_apply=0.7)
            result = async_to_sync(run_clients)(f"{base}/mcp", keys, CLIENTS, DURATION, next_call)
            fake.chaos_off()
        finally:
            stop(web)
    server_log = read_log(tmp_path / "uvicorn.log", tail=20000)
    calls = [c for c in result.calls if c.tool != "(session)"]
    outcomes = result.outcomes()
    summary = (
        f"outcomes {dict(outcomes)}, http {dict(result.http_statuses)}, "
        f"chaos {dict(fake.chaos_counts())}"
    )

    print(f"{len(calls)} calls in {result.elapsed:.1f} s: {summary}")

    # The load happened and the faults with it, every kind of them.
    assert len(calls) >= 100, summary
    counts = fake.chaos_counts()
    assert set(counts) == {"timeout", "reset", "500", "429"}, summary
    assert outcomes["ok"] > outcomes["tool_error"] > 0, summary

    # Every call got a JSON-RPC result: no HTTP 5xx, no JSON-RPC error, no broken session.
    assert result.server_errors == [], summary
    assert outcomes["exception"] == 0, [c.text for c in result.calls if c.outcome == "exception"]
    assert "Traceback" not in server_log, server_log[-4000:]
    # ...and every tool error is one of the gateway's clear messages.
    unclear = [
        (c.tool, problem, c.text)
        for c in calls
        if c.outcome == "tool_error" and (problem := error_problem(c.tool, c.text))
    ]
    assert unclear == [], unclear[:5]
    # Successful answers are the caller's own data, whichever worker answered.
    for c in calls:
        if c.outcome != "ok":
            continue
        if c.tool == "whoami":
            assert c.structured["workspace_name"] == workspace_of_client[c.client]
        elif c.tool == "get_record":
            assert c.structured["record_id"] == c.arguments["record_id"]
    # Every call is in the audit trail once.
    assert ToolCall.objects.count() == len(calls)
    assert ToolCall.objects.filter(ok=True).count() == outcomes["ok"]

    # No connection was marked dead, nor its credentials touched.
    for before in connections:
        after = Connection.objects.get(pk=before.pk)
        assert (after.status, after.version, after.last_error_code) == (
            Connection.Status.ACTIVE,
            before.version,
            "",
        )

    # Notes: nothing lost, nothing written twice.
    assert fake.spec_violations == []
    notes = [c for c in calls if c.tool == "create_note"]
    stored: Counter[str] = Counter()
    stored_ids: dict[str, str] = {}
    for ws in fake.workspaces:
        with fake.lock:
            for note in fake.store(ws.slug).notes.values():
                if note.title.startswith("chaos "):
                    stored[note.title] += 1
                    stored_ids[note.title] = note.id
    assert [t for t, n in stored.items() if n > 1] == []
    # The gateway never resent a write Attio may have received (a 429 is not received).
    attempts = Counter(
        call.json["data"]["title"] for call in fake.calls_to("notes.create") if call.status != 429
    )
    assert attempts == Counter(c.arguments["title"] for c in notes)
    # What the fake did with the one attempt that was not a 429, when it faulted it.
    faulted = {
        e.json["data"]["title"]: e.applied and e.applied_status == 200
        for e in fake.chaos_events
        if e.endpoint == "notes.create" and e.kind != "429"
    }
    assert any(faulted.values()), "no write was applied and then lost its answer"
    assert not all(faulted.values()), "no write failed before it was applied"
    for c in notes:
        title = c.arguments["title"]
        if c.outcome == "ok":
            # Every success exists exactly once, with the id the caller was given.
            assert stored[title] == 1 and stored_ids[title] == c.structured["note_id"]
            assert title not in faulted
        elif c.text.endswith(RATE_STEP):
            # Attio refused every attempt with a 429: nothing was written.
            assert stored[title] == 0, c.text
        else:
            # The caller was told the change may have been applied; it was at most once
            # (above), and exactly as the fake says when the fake caused the failure.
            # (A write that merely took longer than the timeout may be either.)
            assert c.text.endswith(WRITE_STEP), c.text
            if title in faulted:
                assert stored[title] == int(faulted[title]), (c.text, faulted[title])
    assert set(stored) <= {c.arguments["title"] for c in notes}

"""The fake Attio's random-fault mode (``FakeAttio.chaos``), in-process and over HTTP."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.fake_attio import FakeAttio


@pytest.fixture
def fake() -> FakeAttio:
    return FakeAttio()


def note_body(fake: FakeAttio, title: str) -> dict:
    ada = fake.record_id("people", "Ada Lovelace")
    return {
        "data": {
            "parent_object": "people",
            "parent_record_id": ada,
            "title": title,
            "format": "plaintext",
            "content": "c",
        }
    }


def titles(fake: FakeAttio) -> list[str]:
    with fake.lock:
        return [n.title for n in fake.store().notes.values()]


def api(fake: FakeAttio, *, transport=None, base_url="https://api.attio.com", timeout=5.0):
    token = fake.issue_tokens()["access_token"]
    return httpx.Client(
        transport=transport if transport is not None else fake.transport(),
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def test_faults_a_share_of_requests_counts_each_kind_and_is_repeatable():
    def run(seed: int) -> tuple[list[int | str], dict]:
        fake = FakeAttio()
        fake.chaos(rate=0.3, seed=seed)
        outcomes: list[int | str] = []
        with api(fake) as client:
            for _ in range(400):
                try:
                    outcomes.append(client.get("/v2/self").status_code)
                except httpx.TransportError as e:
                    outcomes.append(type(e).__name__)
        return outcomes, dict(fake.chaos_counts())

    outcomes, counts = run(7)
    assert (outcomes, counts) == run(7)
    assert set(counts) == {"timeout", "reset", "500", "429"}
    faulted = sum(counts.values())
    assert 80 <= faulted <= 160  # 30% of 400, give or take
    assert outcomes.count("ReadTimeout") == counts["timeout"]
    assert outcomes.count("RemoteProtocolError") == counts["reset"]
    assert outcomes.count(500) == counts["500"]
    assert outcomes.count(429) == counts["429"]
    assert outcomes.count(200) == 400 - faulted


def test_only_the_chosen_endpoints_and_kinds_and_off_again(fake):
    fake.chaos(rate=1.0, kinds=["500"], endpoints={"records.get"})
    ada = fake.record_id("people", "Ada Lovelace")
    with api(fake) as client:
        assert client.get("/v2/self").status_code == 200
        assert client.get(f"/v2/objects/people/records/{ada}").status_code == 500
        fake.chaos_off()
        assert client.get(f"/v2/objects/people/records/{ada}").status_code == 200
    assert fake.chaos_counts() == {"500": 1}
    fake.chaos(rate=1.0, kinds=["429"], endpoints="self")
    with api(fake) as client:
        answer = client.get("/v2/self")
    assert answer.status_code == 429 and answer.headers["retry-after"].endswith("GMT")
    with pytest.raises(ValueError):
        fake.chaos(kinds=["teapot"])


def test_queued_faults_come_first(fake):
    fake.chaos(rate=1.0, kinds=["500"])
    fake.fail_next("self", status=503)
    with api(fake) as client:
        assert client.get("/v2/self").status_code == 503
        assert client.get("/v2/self").status_code == 500


@pytest.mark.parametrize("kind", ["timeout", "reset"])
def test_a_write_faulted_after_apply_is_applied_and_recorded(fake, kind):
    fake.chaos(rate=1.0, kinds=[kind], endpoints={"notes.create"}, after_apply=1.0)
    with api(fake) as client, pytest.raises(httpx.TransportError):
        client.post("/v2/notes", json=note_body(fake, "after"))
    (event,) = fake.chaos_events
    assert (event.kind, event.endpoint, event.applied, event.applied_status) == (
        kind,
        "notes.create",
        True,
        200,
    )
    assert event.json["data"]["title"] == "after"
    assert titles(fake).count("after") == 1


@pytest.mark.parametrize("kind", ["timeout", "reset", "500", "429"])
def test_a_write_faulted_before_apply_is_not_applied(fake, kind):
    fake.chaos(rate=1.0, kinds=[kind], endpoints={"notes.create"}, after_apply=0.0)
    with api(fake) as client, contextlib.suppress(httpx.TransportError):
        client.post("/v2/notes", json=note_body(fake, "before"))
    (event,) = fake.chaos_events
    assert (event.applied, event.applied_status) == (False, None)
    assert "before" not in titles(fake)


def test_over_http_a_timeout_hangs_and_a_reset_drops_the_connection(fake):
    fake.server_hang_seconds = 3
    with fake.serve() as url, api(fake, transport=httpx.HTTPTransport(), base_url=url) as client:
        fake.chaos(rate=1.0, kinds=["timeout"], endpoints={"notes.create"}, after_apply=1.0)
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v2/notes", json=note_body(fake, "hung"), timeout=0.5)
        fake.chaos(rate=1.0, kinds=["reset"], endpoints={"notes.create"}, after_apply=0.0)
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v2/notes", json=note_body(fake, "dropped"))
        fake.chaos_off()
        assert client.post("/v2/notes", json=note_body(fake, "fine")).status_code == 200
    assert sorted(t for t in titles(fake) if t in ("hung", "dropped", "fine")) == [
        "fine",
        "hung",
    ]
    assert [(e.kind, e.applied, e.applied_status) for e in fake.chaos_events] == [
        ("timeout", True, 200),
        ("reset", False, None),
    ]


def test_reset_forgets_the_mode(fake):
    fake.chaos(rate=1.0, kinds=["500"])
    with api(fake) as client:
        client.get("/v2/self")
    fake.reset()
    assert fake.chaos_events == []
    with api(fake) as client:
        assert client.get("/v2/self").status_code == 200

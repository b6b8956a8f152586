"""Beat runs the sweep every minute: it logs a line when it has work, nothing otherwise."""

import logging

import pytest

from connections import tasks


@pytest.fixture
def portal_log(caplog):
    caplog.set_level(logging.INFO)

    def lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("connections") and r.levelno >= logging.INFO
        ]

    return lines


def test_a_sweep_with_nothing_due_logs_nothing(alice_connection, fake_attio, portal_log):
    # alice's connection was checked a moment ago: nothing is due.
    assert tasks.sweep_connections() == 0
    assert portal_log() == []
    assert fake_attio.count("self") == 0


def test_a_sweep_with_work_logs_what_it_did(alice, make_connection, fake_attio, portal_log):
    make_connection(alice, "acme", last_checked_at=None)

    assert tasks.sweep_connections() == 1

    # (Celery runs the batch eagerly here, so its line comes first.)
    assert sorted(portal_log()) == [
        "Sweep: 1 connection due, 0 revocations to retry at Attio, 0 reconnect notices to send",
        "Swept 1 connection: 1 validated",
    ]

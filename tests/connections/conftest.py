"""Fixtures for the connection tests."""

import contextlib
from unittest import mock

import pytest

from connections import tasks


@pytest.fixture
def worker(django_capture_on_commit_callbacks):
    """`with worker():` commits the block's work, then runs the revoke_upstream tasks it
    queued on commit, as a Celery worker would once the request is over.

    A revoke at Attio is a task, never part of the request: tests that expect Attio to
    have been asked run the block this way.
    """

    @contextlib.contextmanager
    def run_queued():
        queued = []
        with (
            mock.patch.object(tasks.revoke_upstream, "delay", side_effect=queued.append),
            django_capture_on_commit_callbacks(execute=True),
        ):
            yield
        for pending_id in queued:
            tasks.revoke_upstream(pending_id)

    return run_queued

"""Fixtures for the fault tests."""

import pytest

from attio_portal.celery import app as celery_app


@pytest.fixture
def real_broker():
    """Tasks this test sends go to the broker, for the real workers it starts."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True

"""/healthz says whether the database and the broker answer."""

from functools import partial
from unittest import mock

from django.db import OperationalError
from django.urls import reverse

from attio_portal import health
from attio_portal.celery import app as celery_app


def test_healthz_ok(client, db):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


def test_healthz_503_when_broker_is_down(client, db, monkeypatch):
    # Nothing listens on port 1: a real connection attempt that fails.
    unreachable = partial(celery_app.connection_for_write, "redis://127.0.0.1:1/0")
    monkeypatch.setattr(celery_app, "connection_for_write", unreachable)
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unavailable"}


def test_healthz_503_when_database_is_down(client, db):
    refused = OperationalError("connection refused")
    with mock.patch.object(health.connection, "cursor", side_effect=refused):
        response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"

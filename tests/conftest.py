"""Shared fixtures: named personas and helpers for the whole suite."""

import os
from datetime import timedelta

import httpx
import httpx2
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from attio_portal.celery import app as celery_app
from connections import attio
from connections.models import Connection
from tests.fake_attio import FakeAttio

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher is deliberately slow; tests sign in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class RealNetworkBlocked(Exception):
    pass


def _refuse(request):
    raise RealNetworkBlocked(f"a test tried to reach {request.url.host}")


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch):
    """No test may reach the real Attio: every Attio call fails unless faked."""
    monkeypatch.setattr(attio, "http", httpx.Client(transport=httpx.MockTransport(_refuse)))
    monkeypatch.setattr(attio, "oauth_transport", httpx2.MockTransport(_refuse))


@pytest.fixture(autouse=True)
def eager_celery(settings):
    """Tasks run in the caller, so no test publishes to the developer's broker.

    End-to-end tests that start a real worker use their own processes instead. A sweep
    task handles its batch in the caller's thread too, where the test's data is visible.
    """
    settings.CONNECTION_SWEEP_CONCURRENCY = 1
    eager = {"task_always_eager": True, "task_eager_propagates": True}
    before = {key: celery_app.conf.get(key) for key in eager}
    celery_app.conf.update(eager)
    yield
    celery_app.conf.update(before)


@pytest.fixture
def fake_attio(monkeypatch, settings):
    """A stateful fake Attio wired into the portal's Attio client."""
    fake = FakeAttio(redirect_uris=[f"{settings.PORTAL_BASE_URL}/connections/callback/"])
    settings.ATTIO_CLIENT_ID = fake.client_id
    settings.ATTIO_CLIENT_SECRET = fake.client_secret
    monkeypatch.setattr(attio, "http", httpx.Client(transport=fake.transport()))
    monkeypatch.setattr(attio, "oauth_transport", fake.httpx2_transport())
    return fake


@pytest.fixture
def refreshing_attio(fake_attio):
    """The fake Attio issuing one-hour tokens with rotating refresh tokens."""
    fake_attio.token_shape = "refreshing"
    return fake_attio


@pytest.fixture
def make_connection(fake_attio):
    """A connection whose token the fake Attio knows, for any user and workspace."""

    def make_connection(owner, workspace: str | None = None, **overrides):
        ws = fake_attio.workspace(workspace)
        tokens = fake_attio.issue_tokens(workspace)
        connection = Connection.objects.create(
            owner=owner,
            method=overrides.pop("method", Connection.Method.OAUTH),
            workspace_id=ws.id,
            workspace_name=ws.name,
            workspace_slug=ws.slug,
            scopes=fake_attio.scopes,
            last_checked_at=timezone.now(),
        )
        expires_in = tokens.get("expires_in")
        connection.set_credentials(
            access_token=tokens["access_token"],
            refresh_token=tokens.get("refresh_token"),
            expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
        )
        for field, value in overrides.items():
            setattr(connection, field, value)
        connection.save()
        return connection

    return make_connection


@pytest.fixture
def make_user(db):
    def make_user(username: str, **fields):
        fields.setdefault("email", f"{username}@example.com")
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)

    return make_user


@pytest.fixture
def alice(make_user):
    """A team member with an active connection to the Acme workspace."""
    return make_user("alice")


@pytest.fixture
def alice_connection(alice, make_connection):
    return make_connection(alice, "acme")


@pytest.fixture
def bob(make_user):
    """A team member whose connection needs reconnecting."""
    return make_user("bob")


@pytest.fixture
def bob_connection(bob, make_connection):
    return make_connection(
        bob,
        "acme",
        status=Connection.Status.NEEDS_RECONNECT,
        last_error_code="inactive",
        last_error_message="Attio says the token is no longer active.",
    )


@pytest.fixture
def charlie(make_user):
    """A team member with nothing connected."""
    return make_user("charlie")


@pytest.fixture
def staff(make_user):
    """A portal administrator."""
    return make_user("staff", is_staff=True, is_superuser=True)


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    # CI sets REQUIRE_ALL_TESTS: there every test must run, on PostgreSQL.
    if on_postgres or os.environ.get("REQUIRE_ALL_TESTS"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)

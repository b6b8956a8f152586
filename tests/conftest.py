"""Shared fixtures: named personas and helpers for the whole suite."""

import os

import pytest
from django.contrib.auth import get_user_model

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher is deliberately slow; tests sign in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db):
    def make_user(username: str, **fields):
        fields.setdefault("email", f"{username}@example.com")
        return get_user_model().objects.create_user(
            username=username, password=PASSWORD, **fields
        )

    return make_user


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

"""One rule to find a user by what someone typed: the username, else a unique email."""

import pytest
from django.contrib.auth.models import User

from attio_portal.accounts import find_user


@pytest.mark.django_db
def test_find_user_by_username_or_unique_email():
    ada = User.objects.create_user("ada", "ada@example.com")
    assert find_user("ada") == ada
    assert find_user("ADA@example.com") == ada
    assert find_user("nobody") is None
    assert find_user("") is None


@pytest.mark.django_db
def test_a_username_wins_over_someone_elses_email():
    grace = User.objects.create_user("grace@example.com", "grace@elsewhere.example")
    User.objects.create_user("hopper", "grace@example.com")
    assert find_user("grace@example.com") == grace


@pytest.mark.django_db
def test_an_email_shared_by_two_users_finds_nobody():
    User.objects.create_user("one", "shared@example.com")
    User.objects.create_user("two", "Shared@example.com")
    assert find_user("shared@example.com") is None

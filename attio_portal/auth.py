"""Sign-in by username or email address, with a password."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from .accounts import find_user


class EmailOrUsernameBackend(ModelBackend):
    """Accepts the username, or an email address that belongs to exactly one user
    (accounts.find_user's rule).

    With PASSWORD_SIGN_IN off, only superusers sign in with a password, on every page
    that takes one (the portal's and the admin's): anyone else is answered as a wrong
    password would be, before the password is even looked at, so the answer says nothing
    about whether it was right.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = find_user(username) if username else None
        if user is not None:
            username = user.get_username()
            if not settings.PASSWORD_SIGN_IN and not user.is_superuser:
                # As long as checking a password takes, like Django's answer for no user.
                get_user_model()().set_password(password)
                return None
        return super().authenticate(request, username=username, password=password, **kwargs)

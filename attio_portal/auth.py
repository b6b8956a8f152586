"""Sign-in by username or email address."""

from django.contrib.auth.backends import ModelBackend

from .accounts import find_user


class EmailOrUsernameBackend(ModelBackend):
    """Accepts the username, or an email address that belongs to exactly one user
    (accounts.find_user's rule)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = find_user(username) if username else None
        if user is not None:
            username = user.get_username()
        return super().authenticate(request, username=username, password=password, **kwargs)

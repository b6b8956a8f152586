"""Verbs on portal users, where connections and API keys meet."""

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from connections.models import AuditEvent, Connection
from connections.services import record_event, revoke_connection
from mcp_gateway.services import revoke_connected_apps, revoke_keys


def find_user(name: str):
    """The user whose username is `name`, else the one user with that email address
    (case-insensitive), else None. One rule for sign-in and every command."""
    User = get_user_model()
    by_username = User.objects.filter(username=name).first()
    if by_username is not None:
        return by_username
    by_email = list(User.objects.filter(email__iexact=name)[:2])
    return by_email[0] if len(by_email) == 1 else None


def sign_in_lockout_key(request, credentials: dict | None = None) -> str | None:
    """What django-axes counts failed sign-ins against (AXES_USERNAME_CALLABLE): the
    account the typed name resolves to, so every spelling of its email and its username
    share one limit; for a name that resolves to no one, the name lower-cased."""
    if credentials is not None:
        name = credentials.get("username")
    else:
        name = getattr(request, "POST", {}).get("username")
    if not name:
        return name
    name = name.strip()
    user = find_user(name)
    return user.get_username() if user is not None else name.lower()


def deactivate_user(user, *, by, ip: str | None = None) -> int:
    """Deactivate a portal user: revoke their API keys, connected apps and connections, and
    end their sessions.

    Returns how many connections were revoked."""
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        record_event(AuditEvent.Kind.USER_DEACTIVATED, subject=user, actor=by, ip=ip)
        end_sessions(user)
    revoke_keys(owner=user, by=by, reason="user deactivated", ip=ip)
    revoke_connected_apps(user=user, by=by, reason="user deactivated", ip=ip)
    # Deactivating is an admin's act, even when an admin deactivates their own account.
    return sum(
        revoke_connection(c, by=by, reason="user deactivated", ip=ip, as_admin=True)
        for c in Connection.objects.live().filter(owner=user)
    )


def end_sessions(user) -> int:
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended

"""Verbs on portal users, where connections and API keys meet."""

from django.conf import settings
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


def user_for_sign_in(claims: dict):
    """The portal user an OpenID Connect sign-in is for, made on first sign-in; or
    SignInRefused.

    Only a verified email address of an allowed domain is taken. It links to the one user
    with that address (any case, ASCII only), unless that user is a superuser (who signs
    in with a password); a new user gets it as username and email, and no usable
    password, and is active only if OIDC_NEW_USERS_ACTIVE says so. Several users sharing
    the address is refused rather than guessed between.
    """
    from .sso import SignInRefused

    name = settings.OIDC_PROVIDER_NAME
    email = str(claims.get("email") or "").strip()
    if not email or "@" not in email:
        raise SignInRefused(f"{name} did not tell the portal your email address.")
    if claims.get("email_verified") is not True:
        raise SignInRefused(
            f"{name} has not verified the email address {email}. Verify it there, then "
            "sign in again."
        )
    if not email.isascii():
        # Databases fold some letters into others when they compare without case ("ı" is
        # "I" to PostgreSQL): an address that is not plain ASCII could match another's.
        raise SignInRefused(
            f"The email address {email} has letters the portal does not match on; ask your "
            "portal administrator."
        )
    domain = email.rsplit("@", 1)[1].lower()
    if domain not in settings.OIDC_ALLOWED_DOMAINS:
        raise SignInRefused(
            f"Accounts of {domain} cannot sign in to this portal. Sign in with your "
            f"{' or '.join(settings.OIDC_ALLOWED_DOMAINS)} account."
        )
    User = get_user_model()
    matches = [
        u for u in User.objects.filter(email__iexact=email)[:3] if u.email.lower() == email.lower()
    ]
    if len(matches) > 1:
        raise SignInRefused(
            f"Several portal accounts have the email address {email}; ask your portal "
            "administrator to merge them."
        )
    if matches and matches[0].is_superuser:
        # Superusers sign in with their password: one that the identity provider (or a
        # mailbox given their address there) could take over would hold the whole portal.
        raise SignInRefused(
            f"The portal account with the email address {email} is an administrator's: "
            "sign in with its password."
        )
    if matches:
        return matches[0]
    if User.objects.filter(username__iexact=email).exists():
        raise SignInRefused(
            f"A portal account already has the username {email} with another email "
            "address; ask your portal administrator."
        )
    user = User(
        username=email,
        email=email,
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
        is_active=settings.OIDC_NEW_USERS_ACTIVE,
    )
    user.set_unusable_password()
    user.save()
    record_event(AuditEvent.Kind.USER_CREATED_BY_SIGN_IN, subject=user, actor=None, provider=name)
    return user

"""Sign-in through the team's OpenID Connect provider, with authlib's Django client.

authlib does the protocol: discovery, `state` (kept in the session, one per sign-in
started), PKCE S256, the `nonce`, the code exchange, and the ID token's signature (the
provider's published keys), issuer, audience, expiry and nonce. This module adds what the
portal decides: which provider, and the words a refused sign-in is shown in.
"""

from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from requests import RequestException

_clients: dict[tuple[str, str], object] = {}


def enabled() -> bool:
    return bool(settings.OIDC_DISCOVERY_URL)


def provider():
    """The provider's client, made once per discovery URL and client id (its metadata
    and keys are fetched on first use and kept)."""
    key = (settings.OIDC_DISCOVERY_URL, settings.OIDC_CLIENT_ID)
    client = _clients.get(key)
    if client is None:
        client = OAuth().register(
            name="oidc",
            server_metadata_url=settings.OIDC_DISCOVERY_URL,
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET,
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
        )
        _clients[key] = client
    return client


def callback_url() -> str:
    # From PORTAL_BASE_URL, not the request's Host: the provider knows one exact address.
    from django.urls import reverse

    return f"{settings.PORTAL_BASE_URL}{reverse('sso_callback')}"


# The error codes a provider may send back (RFC 6749 4.1.2.1, OpenID Connect Core 3.1.2.6,
# and the token endpoint's, RFC 6749 5.2): anything else is not shown.
KNOWN_ERRORS = {
    "invalid_request",
    "unauthorized_client",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_grant",
    "invalid_client",
    "unsupported_grant_type",
}


class SignInRefused(Exception):
    """A sign-in through the provider that must not go on. The message is for the user."""


def verified_claims(request) -> dict:
    """The ID token's claims for the sign-in this callback ends, checked; or SignInRefused.

    Nothing from the provider's answer reaches the page but an error code of the
    standard ones: a description is the provider's text, and a callback's query string is
    whatever the link that opened it said."""
    name = settings.OIDC_PROVIDER_NAME
    client = provider()
    if not client.framework.get_state_data(request.session, request.GET.get("state")):
        # Before anything else, an error included: a link anyone can make must not show
        # its own words on the portal's page.
        raise SignInRefused(
            "This sign-in was not started in this browser, or it was started too long ago "
            "(its state does not match). Start again."
        )
    try:
        token = client.authorize_access_token(request)
    except MismatchingStateError:
        raise SignInRefused(
            "This sign-in was not started in this browser, or it was started too long ago "
            "(its state does not match). Start again."
        ) from None
    except OAuthError as e:
        if e.error == "access_denied":
            raise SignInRefused(f"{name} did not let you sign in.") from None
        error = e.error if e.error in KNOWN_ERRORS else "an error it did not name"
        raise SignInRefused(f"{name} refused the sign-in ({error}). Start again.") from None
    except ExpiredTokenError:
        raise SignInRefused(
            f"The identity token from {name} has expired (check this server's clock). Start again."
        ) from None
    except (InvalidClaimError, MissingClaimError) as e:
        # The nonce, issuer or audience do not match this sign-in: a token made for
        # another sign-in or another application.
        claim = getattr(e, "claim", "") or "a claim"
        raise SignInRefused(
            f"The identity token from {name} was not made for this sign-in ({claim} does "
            "not match). Start again."
        ) from None
    except JoseError:
        raise SignInRefused(f"The identity token from {name} could not be verified.") from None
    except (RequestException, ValueError):
        raise SignInRefused(
            f"{name} could not be reached, or answered something unexpected."
        ) from None
    claims = token.get("userinfo")
    if not claims:
        raise SignInRefused(f"{name} sent no identity token.")
    return dict(claims)

"""The only module that speaks HTTP to Attio: OAuth token calls and REST calls.

Functions take a token and return plain data. Failures raise AttioError, which says
whether retrying can help (`permanent`) and never carries a token or a raw body.
"""

import email.utils
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "attio-portal"

# All REST calls share this client (and its connection pool).
http = httpx.Client(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, follow_redirects=False)
# authlib's OAuth client is built on httpx2; tests put the fake Attio's transport here.
oauth_transport = None

# OAuth errors after which retrying the same grant cannot succeed.
PERMANENT_OAUTH_ERRORS = {
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
}


class AttioError(Exception):
    """Attio refused or failed a call. The message is safe to show and to log."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        permanent: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.permanent = permanent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"AttioError(status={self.status!r}, code={self.code!r}, permanent={self.permanent!r})"
        )


@dataclass
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: str = ""


@dataclass
class Identity:
    """What `GET /v2/self` says about a token."""

    active: bool
    workspace_id: str = ""
    workspace_name: str = ""
    workspace_slug: str = ""
    member_id: str = ""
    scope: str = ""
    expires_at: datetime | None = None


def retry_after_seconds(value: str | None) -> float | None:
    """Parse Retry-After, which Attio sends as an HTTP date (or seconds)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - timezone.now()).total_seconds())


def error_from_response(response) -> AttioError:
    """Turn an error response (httpx or httpx2) into an AttioError."""
    status = response.status_code
    code = ""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        # REST errors: {"status_code", "type", "code", "message"}; OAuth errors:
        # {"error", "error_description"}.
        code = str(body.get("code") or body.get("error") or "")[:64]
        message = str(body.get("message") or body.get("error_description") or "")
    message = message[:300] or f"Attio answered HTTP {status}"
    if status == 429:
        return AttioError(
            "Attio's rate limit was reached",
            status=status,
            code=code or "rate_limit_exceeded",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return AttioError(f"Attio is unavailable (HTTP {status})", status=status, code=code)
    permanent = status == 401 or code in PERMANENT_OAUTH_ERRORS
    return AttioError(message, status=status, code=code, permanent=permanent)


def transport_error(exc: Exception) -> AttioError:
    kind = "timed out" if "Timeout" in type(exc).__name__ else "could not be reached"
    return AttioError(f"Attio {kind}", code=type(exc).__name__)


def _check_token_response(response) -> None:
    # authlib parses any body as a token answer; stop rate limits, server errors and
    # non-JSON answers here so they arrive as AttioError with their status.
    if response.status_code < 400:
        return
    response.read()
    error = error_from_response(response)
    if response.status_code >= 500 or response.status_code == 429 or not error.code:
        raise error


def _oauth_client(redirect_uri: str | None = None) -> OAuth2Client:
    return OAuth2Client(
        client_id=settings.ATTIO_CLIENT_ID,
        client_secret=settings.ATTIO_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT.read,
        transport=oauth_transport,
        headers={"User-Agent": USER_AGENT},
        event_hooks={"response": [_check_token_response]},
    )


def _token_set(token: dict) -> TokenSet:
    expires_at = None
    if token.get("expires_in") is not None:
        try:
            expires_at = timezone.now() + timedelta(seconds=int(token["expires_in"]))
        except (TypeError, ValueError):
            expires_at = None
    if not token.get("access_token"):
        raise AttioError("Attio's token answer had no access token", code="no_token")
    return TokenSet(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token") or None,
        expires_at=expires_at,
        scope=token.get("scope") or "",
    )


def _call_token_endpoint(call) -> dict:
    try:
        return call()
    except OAuthError as e:
        code = (e.error or "")[:64]
        raise AttioError(
            (e.description or code or "Attio refused the token request")[:300],
            status=400,
            code=code,
            permanent=code in PERMANENT_OAUTH_ERRORS,
        ) from None
    except AttioError:
        raise
    except ValueError:
        raise AttioError(
            "Attio's token endpoint answered something that is not a token",
            code="bad_token_response",
        ) from None
    except Exception as e:  # httpx2 transport errors: timeouts, resets, refused
        if type(e).__module__.startswith(("httpx", "httpcore")):
            raise transport_error(e) from None
        raise


def new_pkce_verifier() -> str:
    # 48 characters from a CSPRNG; RFC 7636 asks for 43 to 128.
    return generate_token(48)


def authorization_url(*, state: str, code_verifier: str, redirect_uri: str) -> str:
    """The Attio authorize URL for a fresh flow.

    https://docs.attio.com/docs/oauth/authorize
    """
    client = _oauth_client(redirect_uri)
    with client:
        url, _ = client.create_authorization_url(
            settings.ATTIO_AUTHORIZE_URL,
            state=state,
            code_verifier=code_verifier,
            **settings.ATTIO_AUTHORIZE_EXTRA_PARAMS,
        )
    return url


def exchange_code(*, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
    """Exchange an authorization code for tokens.

    https://docs.attio.com/docs/oauth/token
    """
    with _oauth_client(redirect_uri) as client:
        token = _call_token_endpoint(
            lambda: client.fetch_token(
                settings.ATTIO_TOKEN_URL,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        )
    return _token_set(token)


def refresh_access_token(refresh_token: str) -> TokenSet:
    """Use a refresh token (the seed guide's token shape; Attio documents none).

    https://docs.attio.com/docs/oauth/token
    """
    with _oauth_client() as client:
        token = _call_token_endpoint(
            lambda: client.refresh_token(settings.ATTIO_TOKEN_URL, refresh_token=refresh_token)
        )
    return _token_set(token)


def revoke_token(token: str) -> None:
    """Revoke an access or refresh token at Attio.

    https://docs.attio.com/docs/oauth/revoke
    """
    with _oauth_client() as client:
        try:
            response = client.revoke_token(settings.ATTIO_REVOKE_URL, token=token)
        except Exception as e:
            if type(e).__module__.startswith(("httpx", "httpcore")):
                raise transport_error(e) from None
            raise
    if response.status_code >= 400:
        raise error_from_response(response)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rest(method: str, path: str, token: str, **kwargs) -> dict:
    url = f"{settings.ATTIO_API_BASE_URL}{path}"
    try:
        response = http.request(method, url, headers=_bearer(token), **kwargs)
    except httpx.TransportError as e:
        raise transport_error(e) from None
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return response.json()
    except ValueError:
        raise AttioError(
            "Attio answered something that is not JSON",
            status=response.status_code,
            code="bad_response",
        ) from None


def get_self(token: str) -> Identity:
    """Identify a token: its workspace, scopes and whether it is still active.

    https://docs.attio.com/rest-api/endpoint-reference/meta/identify
    """
    body = _rest("GET", "/v2/self", token)
    if not body.get("active"):
        return Identity(active=False)
    exp = body.get("exp")
    return Identity(
        active=True,
        workspace_id=str(body.get("workspace_id") or ""),
        workspace_name=str(body.get("workspace_name") or ""),
        workspace_slug=str(body.get("workspace_slug") or ""),
        member_id=str(body.get("authorized_by_workspace_member_id") or ""),
        scope=str(body.get("scope") or ""),
        expires_at=datetime.fromtimestamp(exp, tz=UTC) if exp else None,
    )

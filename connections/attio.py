"""The only module that speaks HTTP to Attio: OAuth token calls and REST calls.

Functions take a token and return plain data. Failures raise AttioError, which says
whether retrying can help (`permanent`) and never carries a token or a raw body.
"""

import asyncio
import contextvars
import email.utils
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

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
    return json_object(response)


def json_object(response) -> dict:
    """The response body as a JSON object, or AttioError: every answer we use is one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise AttioError(
            "Attio answered something unexpected (not a JSON object)",
            status=response.status_code,
            code="bad_response",
        )
    return body


def get_self(token: str) -> Identity:
    """Identify a token: its workspace, scopes and whether it is still active.

    https://docs.attio.com/rest-api/endpoint-reference/meta/identify
    """
    return _identity(_rest("GET", "/v2/self", token))


async def aget_self(token: str) -> Identity:
    """`get_self` for the gateway.

    https://docs.attio.com/rest-api/endpoint-reference/meta/identify
    """
    return _identity(await arequest("GET", "/v2/self", token))


def _identity(body: dict) -> Identity:
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


# --- REST calls for the MCP gateway (async) -------------------------------------------

# Tests put the fake Attio's async transport here.
async_transport = None
_async_clients: dict[int, httpx.AsyncClient] = {}

# How long one tool call may spend waiting out Attio's rate limit, in all.
RATE_LIMIT_WAIT_BUDGET = 10.0
# Attempts for a read that times out or meets a 5xx (writes are never retried blindly).
READ_ATTEMPTS = 3


def async_client() -> httpx.AsyncClient:
    """The shared pool for this event loop (one per uvicorn worker)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None or client.is_closed:
        _async_clients.clear()  # a finished loop's client can't be reused
        client = httpx.AsyncClient(
            timeout=TIMEOUT,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            transport=async_transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )
        _async_clients[id(loop)] = client
    return client


@dataclass
class CallLog:
    """What the calls of one tool call saw, for the audit trail."""

    status: int | None = None
    calls: int = 0
    # Set by the gateway when a call ends in an error, for the audit trail.
    error_code: str = ""


call_log: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar(
    "attio_call_log", default=None
)


def path(template: str, *parts: str) -> str:
    """Fill a path template, quoting each part so no argument can leave the path."""
    return template.format(*(quote(str(p), safe="") for p in parts))


async def arequest(
    method: str,
    url_path: str,
    token: str,
    *,
    params: dict | None = None,
    json: dict | None = None,
    read: bool | None = None,
) -> dict:
    """One REST call to Attio for the gateway.

    Reads are retried a few times on timeouts and 5xx; writes are not, since Attio may
    have applied them. A 429 (nothing was applied) is waited out within a budget, for
    both. Any failure ends as AttioError. `read=True` marks a POST that only reads
    (record and entry queries, search), so it is retried like a GET.
    """
    is_read = method == "GET" if read is None else read
    url = f"{settings.ATTIO_API_BASE_URL}{url_path}"
    log = call_log.get()
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        if log is not None:
            log.calls += 1
        try:
            response = await async_client().request(
                method, url, headers=_bearer(token), params=params, json=json
            )
        except httpx.TransportError as e:
            # A connection that never opened reached nobody: safe to try again.
            retryable = is_read or isinstance(e, httpx.ConnectError)
            if retryable and attempt < READ_ATTEMPTS:
                await asyncio.sleep(0.2 * attempt)
                continue
            raise transport_error(e) from None
        if log is not None:
            log.status = response.status_code
        if response.status_code == 429:
            error = error_from_response(response)
            wait = error.retry_after if error.retry_after is not None else 1.0
            if waited + wait <= RATE_LIMIT_WAIT_BUDGET:
                waited += wait
                await asyncio.sleep(wait)
                continue
            raise error
        if response.status_code >= 500 and is_read and attempt < READ_ATTEMPTS:
            await asyncio.sleep(0.2 * attempt)
            continue
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return {}
        return json_object(response)

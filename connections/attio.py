"""The only module that speaks HTTP to Attio: OAuth token calls and REST calls.

Functions take a token and return plain data. Failures raise AttioError, which says
whether retrying can help (`permanent`) and never carries a token or a raw body: Attio's
error text is kept only after `redact` has removed the call's secrets from it.

Its length is on purpose: it is the project's one transport module for Attio, so "how
does the portal call Attio?" has one answer. Most of it is one short function per
endpoint with its docs link, below the clients, error mapping and paging every endpoint
shares; split by area, those would end up imported back from a common module anyway.
"""

import asyncio
import base64
import contextvars
import email.utils
import logging
import re
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp
import httpx
import httpx2
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from django.conf import settings
from django.utils import timezone
from httpx_aiohttp import AiohttpTransport

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(
    settings.ATTIO_HTTP_TIMEOUT_SECONDS, connect=min(5.0, settings.ATTIO_HTTP_TIMEOUT_SECONDS)
)
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


# --- Keeping secrets out of Attio's error text ------------------------------------------

# Attio's error text is kept (tool errors, Connection.last_error_message, the dashboard,
# the reconnect email, logs), so an upstream that echoes what it was sent must not make
# the portal repeat a token. Each call's own secrets are removed in every encoding we
# can list; the patterns below catch credentials of other shapes.
REDACTED = "[redacted]"
# A run this long of a secret (or of one of its encodings) is removed wherever it
# appears, so a token cut short, split or embedded in a longer string is still caught.
SECRET_RUN = 8
# How much upstream text is looked at; the kept message is cut shorter afterwards.
SCANNED_CHARACTERS = 2000
CREDENTIAL_SHAPES = [
    # An Authorization header value, or one echoed in prose (not "Bearer token").
    re.compile(r"\b(?:Bearer|Basic)\s+[\w.~+/=-]{8,}", re.IGNORECASE),
    # A JSON Web Token: base64url header (always "eyJ"), payload and signature.
    re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"),
    # API-key shapes: sk_live_..., pk_test_..., attio_..., ghp_..., xoxb-...
    re.compile(r"\b(?:sk|pk|rk|attio|ghp|gho|xox[abprs])[_-][\w-]{8,}", re.IGNORECASE),
    # "access_token=...", "client_secret: ..." and friends: whatever follows.
    re.compile(
        r"\b((?:access|refresh|id)_token|client_secret|api_key|code_verifier)"
        r"(\"?\s*[=:]\s*\"?)[^\s\"&,;]+",
        re.IGNORECASE,
    ),
    # "password=..." and "secret: ...", when what follows looks like a value (8+
    # characters with a digit), not words ("attribute password: must be a string").
    re.compile(
        r"\b(password|secret)(\"?\s*[=:]\s*\"?)(?=[^\s\"&,;]*\d)[^\s\"&,;]{8,}",
        re.IGNORECASE,
    ),
]
# No "/" here: a URL's path segments are no credential ("docs.attio.com/rest-api/...").
LONG_RUN = re.compile(r"[A-Za-z0-9+_=%-]{24,}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def secret_forms(secret: str) -> list[str]:
    """The ways a secret we sent may come back: as is, URL-encoded, and base64 of any
    text containing it (each of base64's three alignments, standard and URL-safe)."""
    forms = [secret, quote(secret, safe=""), quote_plus(secret)]
    for pad in ("", "x", "xx"):
        encoded = base64.b64encode((pad + secret).encode()).decode().rstrip("=")
        # Drop the characters the padding (or the text before the secret) decides.
        encoded = encoded[len(pad) + 1 if pad else 0 :]
        forms += [encoded, encoded.replace("+", "-").replace("/", "_")]
    lower_hex = [re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in forms]
    return forms + [form for form in lower_hex if form not in forms]


def looks_like_a_credential(run: str) -> bool:
    """A long run of letters and digits that no Attio message needs: not a UUID (records
    are named by them) and not a slug (lower-case words, maybe a number)."""
    run = UUID.sub("", run)  # "rec_<uuid>" is still only an id
    if len(run) < 24 or not (re.search(r"\d", run) and re.search(r"[A-Za-z]", run)):
        return False
    # Mixed case, as generated tokens are; a long single-case run with digits is a slug or
    # an id Attio may name ("an_attribute_slug_with_a_number_2024_q3"), so it stays.
    return bool(re.search(r"[a-z]", run) and re.search(r"[A-Z]", run))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secrets (in the encodings above) or credential shapes."""
    text = text[:SCANNED_CHARACTERS]
    runs = set()
    for secret in secrets:
        if secret and len(secret) >= SECRET_RUN:
            for form in secret_forms(secret):
                runs.update(form[i : i + SECRET_RUN] for i in range(len(form) - SECRET_RUN + 1))
    hidden = [False] * len(text)
    for i in range(len(text) - SECRET_RUN + 1):
        if text[i : i + SECRET_RUN] in runs:
            hidden[i : i + SECRET_RUN] = [True] * SECRET_RUN
    text = "".join(
        REDACTED if hide and (i == 0 or not hidden[i - 1]) else "" if hide else character
        for i, (character, hide) in enumerate(zip(text, hidden, strict=True))
    )
    for shape in CREDENTIAL_SHAPES:
        text = shape.sub(_keep_the_name, text)
    return LONG_RUN.sub(lambda m: REDACTED if looks_like_a_credential(m[0]) else m[0], text)


def _keep_the_name(match: re.Match) -> str:
    # "Bearer [redacted]" and "access_token=[redacted]" still say what was there.
    if match.lastindex:
        return f"{match[1]}{match[2]}{REDACTED}"
    return f"{match[0].split()[0]} {REDACTED}" if " " in match[0] else REDACTED


def error_from_response(response, secrets: Iterable[str | None] = ()) -> AttioError:
    """Turn an error response (httpx or httpx2) into an AttioError.

    `secrets` are what the request carried (its token, a client secret, a code): Attio's
    text is kept only with them, and anything shaped like a credential, taken out.
    """
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
        code = redact(str(body.get("code") or body.get("error") or ""), secrets)[:64]
        message = redact(str(body.get("message") or body.get("error_description") or ""), secrets)
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
    if isinstance(exc.__cause__, aiohttp.ClientError):
        exc = exc.__cause__  # what aiohttp saw, rather than httpx_aiohttp's loose mapping
    kind = "timed out" if "Timeout" in type(exc).__name__ else "could not be reached"
    return AttioError(f"Attio {kind}", code=type(exc).__name__)


def _check_token_response(response, *, secrets: Iterable[str | None]) -> None:
    # authlib parses any body as a token answer; stop rate limits, server errors and
    # non-JSON answers here so they arrive as AttioError with their status.
    if response.status_code < 400:
        return
    response.read()
    error = error_from_response(response, secrets)
    if response.status_code >= 500 or response.status_code == 429 or not error.code:
        raise error


_ssl_context = None


def ssl_context():
    # Each OAuth client would otherwise load the CA bundle again (~35 ms a refresh).
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx2.create_ssl_context()
    return _ssl_context


_oauth_pool = None


def _oauth_transport():
    """One connection pool for every token call, so a refresh reuses a kept-alive
    connection; the clients built on it are never closed, since that would close the
    pool under other threads' calls."""
    global _oauth_pool
    if oauth_transport is not None:
        return oauth_transport
    if _oauth_pool is None:
        _oauth_pool = httpx2.HTTPTransport(verify=ssl_context())
    return _oauth_pool


def _oauth_client(
    redirect_uri: str | None = None, *, secrets: Iterable[str | None] = ()
) -> OAuth2Client:
    """A client for one token call; `secrets` are the grant's, kept out of its errors."""
    secrets = (settings.ATTIO_CLIENT_SECRET, *secrets)
    return OAuth2Client(
        verify=ssl_context(),
        client_id=settings.ATTIO_CLIENT_ID,
        client_secret=settings.ATTIO_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT.read,
        transport=_oauth_transport(),
        headers={"User-Agent": USER_AGENT},
        event_hooks={"response": [partial(_check_token_response, secrets=secrets)]},
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


def _call_token_endpoint(call, secrets: Iterable[str | None]) -> dict:
    secrets = (settings.ATTIO_CLIENT_SECRET, *secrets)
    try:
        return call()
    except OAuthError as e:
        code = redact(e.error or "", secrets)[:64]
        description = redact(e.description or "", secrets)
        raise AttioError(
            (description or code or "Attio refused the token request")[:300],
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
    url, _ = _oauth_client(redirect_uri).create_authorization_url(
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
    secrets = (code, code_verifier)
    client = _oauth_client(redirect_uri, secrets=secrets)
    token = _call_token_endpoint(
        lambda: client.fetch_token(
            settings.ATTIO_TOKEN_URL,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
        ),
        secrets,
    )
    return _token_set(token)


def refresh_access_token(refresh_token: str) -> TokenSet:
    """Use a refresh token (the seed guide's token shape; Attio documents none).

    https://docs.attio.com/docs/oauth/token
    """
    client = _oauth_client(secrets=[refresh_token])
    token = _call_token_endpoint(
        lambda: client.refresh_token(settings.ATTIO_TOKEN_URL, refresh_token=refresh_token),
        [refresh_token],
    )
    return _token_set(token)


def revoke_token(token: str) -> None:
    """Revoke an access or refresh token at Attio.

    https://docs.attio.com/docs/oauth/revoke
    """
    try:
        response = _oauth_client(secrets=[token]).revoke_token(
            settings.ATTIO_REVOKE_URL, token=token
        )
    except Exception as e:
        if type(e).__module__.startswith(("httpx", "httpcore")):
            raise transport_error(e) from None
        raise
    if response.status_code >= 400:
        raise error_from_response(response, [token, settings.ATTIO_CLIENT_SECRET])


def _bearer(token: str) -> dict[str, str]:
    if not (token.isascii() and token.isprintable()):
        # HTTP headers can't carry it, and no Attio token looks like that.
        raise AttioError("This is not a valid Attio token", code="malformed_token", permanent=True)
    return {"Authorization": f"Bearer {token}"}


def _rest(method: str, path: str, token: str, **kwargs) -> dict:
    url = f"{settings.ATTIO_API_BASE_URL}{path}"
    # A pooled connection the server closed while idle fails on reuse; a read can
    # safely go again once, on a fresh connection.
    attempts = 2 if method == "GET" else 1
    for attempt in range(1, attempts + 1):
        try:
            response = http.request(method, url, headers=_bearer(token), **kwargs)
            break
        except httpx.TransportError as e:
            if attempt == attempts or isinstance(e, httpx.TimeoutException):
                raise transport_error(e) from None
    if response.status_code >= 400:
        raise error_from_response(response, [token])
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


def gateway_transport() -> httpx.AsyncBaseTransport:
    """aiohttp under httpx's interface, for the gateway's calls.

    One GET costs the worker about a quarter of the CPU it costs through httpx's own pool
    (0.33 against 1.39 ms at 16 concurrent calls, bench/upstream_client.py), and each tool
    call makes at least one. Everything above the transport (timeouts, retries, errors,
    the fake Attio of the tests) stays httpx's; so do the CA bundle (certifi, or
    SSL_CERT_FILE) and the proxy from the environment, which httpx leaves to a transport
    of one's own.
    """

    def session() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=100, keepalive_timeout=5.0, ssl=httpx.create_ssl_context()
            ),
            # One pool serves every user's token: nothing Attio sets may follow another's.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp sends a PUT or DELETE a second time by itself when the connection drops
        # before an answer; Attio may have applied the first, so `arequest` alone decides
        # what is tried again. (The attribute is the one aiohttp's own test client sets.)
        session._retry_connection = False
        return session

    return AiohttpTransport(client=session, proxy=environment_proxy(settings.ATTIO_API_BASE_URL))


def environment_proxy(url: str) -> httpx.Proxy | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for `url`, unless NO_PROXY
    exempts its host: what httpx's own pool would use. Read once, as httpx does."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return httpx.Proxy(proxy)


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
            transport=async_transport or gateway_transport(),
        )
        _async_clients[id(loop)] = client
    return client


async def aclose_clients() -> None:
    """Close this process's pools (the MCP server's lifespan, at shutdown)."""
    clients = list(_async_clients.values())
    _async_clients.clear()
    for client in clients:
        await client.aclose()


def reached_nobody(exc: Exception) -> bool:
    """Whether a failed call never reached Attio (no connection opened), so is safe to repeat."""
    return isinstance(exc, httpx.ConnectError) or isinstance(
        exc.__cause__, aiohttp.ClientConnectorError
    )


# Told the status code of every answer `arequest` gets, when set: a caller that keeps its
# own record of what Attio answered sets it around its calls. A context variable, so
# concurrent requests each see only their own.
answer_observer: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "attio_answer_observer", default=None
)


def path(template: str, *parts: str) -> str:
    """Fill a path template, quoting each part so no argument can leave the path.

    Quoting leaves "." and ".." as they are, and httpx collapses them ("/v2/objects/../
    lists" is "/v2/lists"), so a part that is one is refused: slugs reach here from
    Attio's own answers as well as from the tools' checked arguments. The error is a 400
    AttioError, which the tools already turn into "check the arguments".
    """
    for part in parts:
        if str(part) in (".", ".."):
            raise AttioError(
                f"“{part}” cannot be a segment of an Attio path",
                status=400,
                code="invalid_path_segment",
                permanent=True,
            )
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
    observe = answer_observer.get()
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            # aiohttp times connecting and each read, not sending the body: the whole
            # attempt is bounded too, so a peer that stops reading can't hold a call.
            async with asyncio.timeout(TIMEOUT.connect + TIMEOUT.write + TIMEOUT.read):
                response = await async_client().request(
                    method, url, headers=_bearer(token), params=params, json=json
                )
        except (httpx.RequestError, aiohttp.ClientError, TimeoutError) as e:
            # httpx_aiohttp maps most of aiohttp's errors to httpx's, not all of them, and
            # some loosely (a refused connection arrives as a ConnectTimeout).
            retryable = is_read or reached_nobody(e)
            if retryable and attempt < READ_ATTEMPTS:
                await asyncio.sleep(0.2 * attempt)
                continue
            raise transport_error(e) from None
        if observe is not None:
            observe(response.status_code)
        if response.status_code == 429:
            error = error_from_response(response, [token])
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
            raise error_from_response(response, [token])
        if response.status_code == 204 or not response.content:
            return {}
        return json_object(response)


def _data(body: dict):
    """The `data` of a successful answer: every Attio read and write wraps its result so."""
    if "data" not in body:
        raise AttioError("Attio answered something unexpected (no data)", code="bad_response")
    return body["data"]


def _page(limit: int, offset: int) -> dict:
    return {"limit": limit, "offset": offset}


def _query_body(filter: dict | None, sorts: list | None, limit: int, offset: int) -> dict:
    body: dict = _page(limit, offset)
    if filter:
        body["filter"] = filter
    if sorts:
        body["sorts"] = sorts
    return body


# Objects and attributes


async def alist_objects(token: str) -> list[dict]:
    """Every object in the workspace (people, companies, deals, custom objects).

    https://docs.attio.com/rest-api/endpoint-reference/objects/list-objects
    """
    return _data(await arequest("GET", "/v2/objects", token))


async def alist_attributes(token: str, target: str, identifier: str) -> list[dict]:
    """The attributes of an object or a list (`target` is "objects" or "lists").

    https://docs.attio.com/rest-api/endpoint-reference/attributes/list-attributes
    """
    return _data(await arequest("GET", path("/v2/{}/{}/attributes", target, identifier), token))


async def alist_select_options(
    token: str, target: str, identifier: str, attribute: str, *, show_archived: bool = False
) -> list[dict]:
    """The options of a select attribute (archived ones too, with `show_archived`).

    https://docs.attio.com/rest-api/endpoint-reference/attributes/list-select-options
    """
    url = path("/v2/{}/{}/attributes/{}/options", target, identifier, attribute)
    params = {"show_archived": "true"} if show_archived else None
    return _data(await arequest("GET", url, token, params=params))


async def alist_statuses(
    token: str, target: str, identifier: str, attribute: str, *, show_archived: bool = False
) -> list[dict]:
    """The statuses of a status attribute (archived ones too, with `show_archived`).

    https://docs.attio.com/rest-api/endpoint-reference/attributes/list-statuses
    """
    url = path("/v2/{}/{}/attributes/{}/statuses", target, identifier, attribute)
    params = {"show_archived": "true"} if show_archived else None
    return _data(await arequest("GET", url, token, params=params))


async def acreate_object(token: str, data: dict) -> dict:
    """Create a custom object (`api_slug`, `singular_noun`, `plural_noun`).

    https://docs.attio.com/rest-api/endpoint-reference/objects/create-an-object
    """
    return _data(await arequest("POST", "/v2/objects", token, json={"data": data}))


async def aupdate_object(token: str, object: str, data: dict) -> dict:
    """Change an object's slug or nouns.

    https://docs.attio.com/rest-api/endpoint-reference/objects/update-an-object
    """
    url = path("/v2/objects/{}", object)
    return _data(await arequest("PATCH", url, token, json={"data": data}))


async def acreate_attribute(token: str, target: str, identifier: str, data: dict) -> dict:
    """Create an attribute on an object or a list (`target` is "objects" or "lists").

    https://docs.attio.com/rest-api/endpoint-reference/attributes/create-an-attribute
    """
    url = path("/v2/{}/{}/attributes", target, identifier)
    return _data(await arequest("POST", url, token, json={"data": data}))


async def aupdate_attribute(
    token: str, target: str, identifier: str, attribute: str, data: dict
) -> dict:
    """Change an attribute (title, slug, flags, config, archived).

    https://docs.attio.com/rest-api/endpoint-reference/attributes/update-an-attribute
    """
    url = path("/v2/{}/{}/attributes/{}", target, identifier, attribute)
    return _data(await arequest("PATCH", url, token, json={"data": data}))


async def acreate_select_option(
    token: str, target: str, identifier: str, attribute: str, data: dict
) -> dict:
    """Add an option to a select attribute.

    https://docs.attio.com/rest-api/endpoint-reference/attributes/create-a-select-option
    """
    url = path("/v2/{}/{}/attributes/{}/options", target, identifier, attribute)
    return _data(await arequest("POST", url, token, json={"data": data}))


async def aupdate_select_option(
    token: str, target: str, identifier: str, attribute: str, option: str, data: dict
) -> dict:
    """Rename or archive a select option (`option` is its UUID or title).

    https://docs.attio.com/rest-api/endpoint-reference/attributes/update-a-select-option
    """
    url = path("/v2/{}/{}/attributes/{}/options/{}", target, identifier, attribute, option)
    return _data(await arequest("PATCH", url, token, json={"data": data}))


async def acreate_status(
    token: str, target: str, identifier: str, attribute: str, data: dict
) -> dict:
    """Add a status to a status attribute.

    https://docs.attio.com/rest-api/endpoint-reference/attributes/create-a-status
    """
    url = path("/v2/{}/{}/attributes/{}/statuses", target, identifier, attribute)
    return _data(await arequest("POST", url, token, json={"data": data}))


async def aupdate_status(
    token: str, target: str, identifier: str, attribute: str, status: str, data: dict
) -> dict:
    """Change or archive a status (`status` is its UUID or title).

    https://docs.attio.com/rest-api/endpoint-reference/attributes/update-a-status
    """
    url = path("/v2/{}/{}/attributes/{}/statuses/{}", target, identifier, attribute, status)
    return _data(await arequest("PATCH", url, token, json={"data": data}))


# Records


async def aquery_records(
    token: str, object: str, *, filter: dict | None, sorts: list | None, limit: int, offset: int
) -> list[dict]:
    """Records of an object, filtered and sorted (a POST that only reads).

    https://docs.attio.com/rest-api/endpoint-reference/records/list-records
    """
    url = path("/v2/objects/{}/records/query", object)
    body = _query_body(filter, sorts, limit, offset)
    return _data(await arequest("POST", url, token, json=body, read=True))


async def asearch_records(token: str, query: str, objects: list[str], limit: int) -> list[dict]:
    """Fuzzy search across objects, as the workspace sees it (Attio marks it alpha).

    https://docs.attio.com/rest-api/endpoint-reference/records/search-records
    """
    body = {
        "query": query,
        "objects": objects,
        "limit": limit,
        "request_as": {"type": "workspace"},
    }
    return _data(await arequest("POST", "/v2/objects/records/search", token, json=body, read=True))


async def aget_record(token: str, object: str, record_id: str) -> dict:
    """One record.

    https://docs.attio.com/rest-api/endpoint-reference/records/get-a-record
    """
    url = path("/v2/objects/{}/records/{}", object, record_id)
    return _data(await arequest("GET", url, token))


async def acreate_record(token: str, object: str, values: dict) -> dict:
    """Create a record; fails on a unique attribute conflict.

    https://docs.attio.com/rest-api/endpoint-reference/records/create-a-record
    """
    url = path("/v2/objects/{}/records", object)
    return _data(await arequest("POST", url, token, json={"data": {"values": values}}))


async def aassert_record(token: str, object: str, matching_attribute: str, values: dict) -> dict:
    """Create or update the record matching a unique attribute (multiselects overwritten).

    https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record
    """
    url = path("/v2/objects/{}/records", object)
    return _data(
        await arequest(
            "PUT",
            url,
            token,
            params={"matching_attribute": matching_attribute},
            json={"data": {"values": values}},
        )
    )


async def aupdate_record(token: str, object: str, record_id: str, values: dict) -> dict:
    """Update a record, adding to multiselect values.

    https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-append-multiselect-values
    """
    url = path("/v2/objects/{}/records/{}", object, record_id)
    return _data(await arequest("PATCH", url, token, json={"data": {"values": values}}))


async def aoverwrite_record(token: str, object: str, record_id: str, values: dict) -> dict:
    """Update a record, replacing multiselect values.

    https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-overwrite-multiselect-values
    """
    url = path("/v2/objects/{}/records/{}", object, record_id)
    return _data(await arequest("PUT", url, token, json={"data": {"values": values}}))


async def adelete_record(token: str, object: str, record_id: str) -> None:
    """Delete a record for good.

    https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record
    """
    await arequest("DELETE", path("/v2/objects/{}/records/{}", object, record_id), token)


async def alist_record_entries(
    token: str, object: str, record_id: str, *, limit: int, offset: int
) -> list[dict]:
    """The list entries a record has, in every list.

    https://docs.attio.com/rest-api/endpoint-reference/records/list-record-entries
    """
    url = path("/v2/objects/{}/records/{}/entries", object, record_id)
    return _data(await arequest("GET", url, token, params=_page(limit, offset)))


async def alist_record_values(
    token: str,
    object: str,
    record_id: str,
    attribute: str,
    *,
    show_historic: bool,
    limit: int,
    offset: int,
) -> list[dict]:
    """One attribute's values on a record; with `show_historic`, every value it has had.

    https://docs.attio.com/rest-api/endpoint-reference/records/list-record-attribute-values
    """
    url = path("/v2/objects/{}/records/{}/attributes/{}/values", object, record_id, attribute)
    params = {"show_historic": "true" if show_historic else "false", **_page(limit, offset)}
    return _data(await arequest("GET", url, token, params=params))


# Lists and entries


async def alist_lists(token: str) -> list[dict]:
    """Every list the token can see.

    https://docs.attio.com/rest-api/endpoint-reference/lists/list-all-lists
    """
    return _data(await arequest("GET", "/v2/lists", token))


async def aget_list(token: str, list: str) -> dict:
    """One list.

    https://docs.attio.com/rest-api/endpoint-reference/lists/get-a-list
    """
    return _data(await arequest("GET", path("/v2/lists/{}", list), token))


async def aquery_entries(
    token: str, list: str, *, filter: dict | None, sorts: list | None, limit: int, offset: int
) -> list[dict]:
    """Entries of a list, filtered and sorted (a POST that only reads).

    https://docs.attio.com/rest-api/endpoint-reference/entries/list-entries
    """
    url = path("/v2/lists/{}/entries/query", list)
    body = _query_body(filter, sorts, limit, offset)
    return _data(await arequest("POST", url, token, json=body, read=True))


async def aget_entry(token: str, list: str, entry_id: str) -> dict:
    """One list entry.

    https://docs.attio.com/rest-api/endpoint-reference/entries/get-a-list-entry
    """
    return _data(await arequest("GET", path("/v2/lists/{}/entries/{}", list, entry_id), token))


async def acreate_entry(
    token: str, list: str, parent_object: str, parent_record_id: str, entry_values: dict
) -> dict:
    """Add a record to a list (the same record may be added more than once).

    https://docs.attio.com/rest-api/endpoint-reference/entries/create-an-entry-add-record-to-list
    """
    data = {
        "parent_object": parent_object,
        "parent_record_id": parent_record_id,
        "entry_values": entry_values,
    }
    return _data(
        await arequest("POST", path("/v2/lists/{}/entries", list), token, json={"data": data})
    )


async def aupdate_entry(token: str, list: str, entry_id: str, entry_values: dict) -> dict:
    """Update a list entry, adding to multiselect values.

    https://docs.attio.com/rest-api/endpoint-reference/entries/update-a-list-entry-append-multiselect-values
    """
    url = path("/v2/lists/{}/entries/{}", list, entry_id)
    return _data(await arequest("PATCH", url, token, json={"data": {"entry_values": entry_values}}))


async def aoverwrite_entry(token: str, list: str, entry_id: str, entry_values: dict) -> dict:
    """Update a list entry, replacing multiselect values.

    https://docs.attio.com/rest-api/endpoint-reference/entries/update-a-list-entry-overwrite-multiselect-values
    """
    url = path("/v2/lists/{}/entries/{}", list, entry_id)
    return _data(await arequest("PUT", url, token, json={"data": {"entry_values": entry_values}}))


async def adelete_entry(token: str, list: str, entry_id: str) -> None:
    """Remove an entry from a list (the record itself stays).

    https://docs.attio.com/rest-api/endpoint-reference/entries/delete-a-list-entry
    """
    await arequest("DELETE", path("/v2/lists/{}/entries/{}", list, entry_id), token)


async def alist_entry_values(
    token: str,
    list: str,
    entry_id: str,
    attribute: str,
    *,
    show_historic: bool,
    limit: int,
    offset: int,
) -> list[dict]:
    """One attribute's values on a list entry; with `show_historic`, every value it has had.

    https://docs.attio.com/rest-api/endpoint-reference/entries/list-attribute-values-for-a-list-entry
    """
    url = path("/v2/lists/{}/entries/{}/attributes/{}/values", list, entry_id, attribute)
    params = {"show_historic": "true" if show_historic else "false", **_page(limit, offset)}
    return _data(await arequest("GET", url, token, params=params))


async def acreate_list(token: str, data: dict) -> dict:
    """Create a list of one object's records, with its access levels.

    https://docs.attio.com/rest-api/endpoint-reference/lists/create-a-list
    """
    return _data(await arequest("POST", "/v2/lists", token, json={"data": data}))


async def aupdate_list(token: str, list: str, data: dict) -> dict:
    """Change a list's name, slug or access (Attio can't change its parent object).

    https://docs.attio.com/rest-api/endpoint-reference/lists/update-a-list
    """
    return _data(await arequest("PATCH", path("/v2/lists/{}", list), token, json={"data": data}))


# Workspace members


async def alist_workspace_members(token: str) -> list[dict]:
    """Every member of the workspace (Attio does not paginate this).

    https://docs.attio.com/rest-api/endpoint-reference/workspace-members/list-workspace-members
    """
    return _data(await arequest("GET", "/v2/workspace_members", token))


async def aget_workspace_member(token: str, workspace_member_id: str) -> dict:
    """One workspace member.

    https://docs.attio.com/rest-api/endpoint-reference/workspace-members/get-a-workspace-member
    """
    url = path("/v2/workspace_members/{}", workspace_member_id)
    return _data(await arequest("GET", url, token))


# Notes


async def alist_notes(
    token: str, parent_object: str, parent_record_id: str, *, limit: int, offset: int
) -> list[dict]:
    """The notes on one record.

    https://docs.attio.com/rest-api/endpoint-reference/notes/list-notes
    """
    params = {
        "parent_object": parent_object,
        "parent_record_id": parent_record_id,
        **_page(limit, offset),
    }
    return _data(await arequest("GET", "/v2/notes", token, params=params))


async def aget_note(token: str, note_id: str) -> dict:
    """One note, with its content as plaintext and as markdown.

    https://docs.attio.com/rest-api/endpoint-reference/notes/get-a-note
    """
    return _data(await arequest("GET", path("/v2/notes/{}", note_id), token))


async def acreate_note(
    token: str, parent_object: str, parent_record_id: str, title: str, content: str, format: str
) -> dict:
    """Create a note on a record (`format` is "plaintext" or "markdown").

    https://docs.attio.com/rest-api/endpoint-reference/notes/create-a-note
    """
    data = {
        "parent_object": parent_object,
        "parent_record_id": parent_record_id,
        "title": title,
        "format": format,
        "content": content,
    }
    return _data(await arequest("POST", "/v2/notes", token, json={"data": data}))


async def adelete_note(token: str, note_id: str) -> None:
    """Delete a note.

    https://docs.attio.com/rest-api/endpoint-reference/notes/delete-a-note
    """
    await arequest("DELETE", path("/v2/notes/{}", note_id), token)


# Tasks


async def alist_tasks(token: str, params: dict) -> list[dict]:
    """Tasks, filtered by the query parameters Attio documents (linked_object, ...).

    https://docs.attio.com/rest-api/endpoint-reference/tasks/list-tasks
    """
    return _data(await arequest("GET", "/v2/tasks", token, params=params))


async def acreate_task(token: str, data: dict) -> dict:
    """Create a task (plaintext content; Attio wants every field, even when empty).

    https://docs.attio.com/rest-api/endpoint-reference/tasks/create-a-task
    """
    return _data(await arequest("POST", "/v2/tasks", token, json={"data": data}))


async def aupdate_task(token: str, task_id: str, data: dict) -> dict:
    """Update a task's deadline, completion, linked records or assignees (not its content).

    https://docs.attio.com/rest-api/endpoint-reference/tasks/update-a-task
    """
    return _data(await arequest("PATCH", path("/v2/tasks/{}", task_id), token, json={"data": data}))


async def adelete_task(token: str, task_id: str) -> None:
    """Delete a task.

    https://docs.attio.com/rest-api/endpoint-reference/tasks/delete-a-task
    """
    await arequest("DELETE", path("/v2/tasks/{}", task_id), token)


# Threads and comments


async def alist_threads(token: str, params: dict) -> list[dict]:
    """Comment threads on a record (`object`, `record_id`) or an entry (`list`, `entry_id`).

    https://docs.attio.com/rest-api/endpoint-reference/threads/list-threads
    """
    return _data(await arequest("GET", "/v2/threads", token, params=params))


async def acreate_comment(token: str, data: dict) -> dict:
    """Comment on a record or a list entry, or reply in a thread.

    https://docs.attio.com/rest-api/endpoint-reference/comments/create-a-comment
    """
    return _data(await arequest("POST", "/v2/comments", token, json={"data": data}))


async def aget_thread(token: str, thread_id: str) -> dict:
    """One comment thread, with its comments.

    https://docs.attio.com/rest-api/endpoint-reference/threads/get-a-thread
    """
    return _data(await arequest("GET", path("/v2/threads/{}", thread_id), token))


async def aget_comment(token: str, comment_id: str) -> dict:
    """One comment.

    https://docs.attio.com/rest-api/endpoint-reference/comments/get-a-comment
    """
    return _data(await arequest("GET", path("/v2/comments/{}", comment_id), token))


async def adelete_comment(token: str, comment_id: str) -> None:
    """Delete a comment (deleting a thread's first comment deletes the thread).

    https://docs.attio.com/rest-api/endpoint-reference/comments/delete-a-comment
    """
    await arequest("DELETE", path("/v2/comments/{}", comment_id), token)


# Meetings and call recordings


@dataclass
class CursorPage:
    """A page of a listing Attio pages by cursor, and the cursor of the next page (None on
    the last)."""

    items: list[dict]
    next_cursor: str | None


def _cursor_page(body: dict, items: list[dict]) -> CursorPage:
    pagination = body.get("pagination")
    cursor = pagination.get("next_cursor") if isinstance(pagination, dict) else None
    return CursorPage(items=items, next_cursor=str(cursor) if cursor else None)


async def alist_meetings(token: str, params: dict) -> CursorPage:
    """Meetings, filtered by the query parameters Attio documents (linked_object, ...).

    https://docs.attio.com/rest-api/endpoint-reference/meetings/list-meetings
    """
    body = await arequest("GET", "/v2/meetings", token, params=params)
    return _cursor_page(body, _data(body))


async def aget_meeting(token: str, meeting_id: str) -> dict:
    """One meeting.

    https://docs.attio.com/rest-api/endpoint-reference/meetings/get-a-meeting
    """
    return _data(await arequest("GET", path("/v2/meetings/{}", meeting_id), token))


async def alist_call_recordings(token: str, meeting_id: str, params: dict) -> CursorPage:
    """The call recordings of a meeting (`limit`, `cursor`).

    https://docs.attio.com/rest-api/endpoint-reference/call-recordings/list-call-recordings
    """
    url = path("/v2/meetings/{}/call_recordings", meeting_id)
    body = await arequest("GET", url, token, params=params)
    return _cursor_page(body, _data(body))


async def aget_call_recording(token: str, meeting_id: str, call_recording_id: str) -> dict:
    """One call recording of a meeting.

    https://docs.attio.com/rest-api/endpoint-reference/call-recordings/get-call-recording
    """
    url = path("/v2/meetings/{}/call_recordings/{}", meeting_id, call_recording_id)
    return _data(await arequest("GET", url, token))


async def aget_transcript(
    token: str, meeting_id: str, call_recording_id: str, params: dict
) -> CursorPage:
    """A page of a call recording's transcript segments (`cursor`; Attio picks the size).

    https://docs.attio.com/rest-api/endpoint-reference/transcripts/get-call-transcript
    """
    url = path("/v2/meetings/{}/call_recordings/{}/transcript", meeting_id, call_recording_id)
    body = await arequest("GET", url, token, params=params)
    data = _data(body)
    segments = data.get("transcript") if isinstance(data, dict) else None
    return _cursor_page(body, segments if isinstance(segments, list) else [])

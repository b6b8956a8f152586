"""A small, stateful fake of Attio's OAuth server and REST API.

``FakeAttio.handle(request)`` answers one ``httpx.Request`` with an
``httpx.Response``; the transports, the ASGI app and the loopback server in
``server.py`` all wrap it. Hosts are ignored: one fake answers ``app.attio.com``
paths (``/authorize``, ``/oauth/...``) and ``api.attio.com`` paths (``/v2/...``).

Behaviour follows Attio's docs (https://docs.attio.com/rest-api/guides/configuring-oauth,
the OAuth endpoint pages and the OpenAPI document). Where Attio documents nothing (401
bodies, refresh tokens), the choices are marked in comments.

All state sits behind one lock because tests call the fake from many threads.
Injected delays are served outside the lock so a slow call never blocks others.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx

from . import meetings, rest, schema_writes, spec
from .limits import DEFAULT_LIMITS, RateKind, RateTracker, rate_kind
from .model import Store
from .pages import consent_page, error_page
from .seed import build_store
from .server import FakeAttioASGI

TokenShape = Literal["static", "refreshing"]
RouteKind = Literal["html", "oauth", "api"]
ChaosKind = Literal["timeout", "reset", "500", "429"]
CHAOS_KINDS: tuple[ChaosKind, ...] = ("timeout", "reset", "500", "429")

DEFAULT_SCOPES = (
    "record_permission:read-write object_configuration:read list_entry:read-write "
    "list_configuration:read note:read-write task:read-write comment:read-write "
    "user_management:read meeting:read call_recording:read"
)

CODE_LIFETIME = 600  # seconds; authorization codes expire after 10 minutes

_ATTIO_ERROR_KINDS = {
    400: ("invalid_request_error", "validation_type"),
    # The 401 body is not in Attio's OpenAPI document. The type matches the 403
    # the document declares; the code is our own choice. Clients should decide on
    # the HTTP status, not on these strings.
    401: ("auth_error", "unauthorized"),
    403: ("auth_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


# --- records kept by the fake -------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """An Attio workspace the fake can grant tokens for."""

    id: str
    name: str
    slug: str
    logo_url: str | None = None
    # The workspace member who approves grants here (authorized_by_workspace_member_id).
    member_id: str = ""


@dataclass
class TokenRecord:
    """Every token the fake has issued: access and refresh tokens and API keys."""

    token: str
    kind: Literal["access", "refresh", "api_key"]
    workspace_id: str
    client_id: str
    scopes: str
    member_id: str
    grant_id: str  # shared by the tokens of one authorization and its refreshes
    issued_at: float
    expires_at: float | None
    active: bool = True
    used: bool = False  # refresh tokens only: already exchanged (single use)


@dataclass
class AuthCode:
    """An authorization code waiting to be exchanged."""

    code: str
    client_id: str
    redirect_uri: str | None
    workspace_id: str
    member_id: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float
    expires_at: float
    params: dict[str, str]  # everything the authorize request carried
    used: bool = False


@dataclass(frozen=True)
class Call:
    """One request the fake received, recorded unredacted (tests only)."""

    endpoint: str
    method: str
    path: str
    url: str
    query: dict[str, str]
    form: dict[str, str] | None
    json: Any
    content: bytes
    headers: dict[str, str]
    status: int | None  # None when an exception was injected instead
    error: str | None
    time: float


@dataclass(frozen=True)
class SpecViolation:
    """A /v2 request (or a response of the fake) that broke Attio's OpenAPI."""

    kind: Literal["request", "response"]
    method: str
    path: str
    message: str


@dataclass
class ChaosEvent:
    """One fault the random-fault mode (``FakeAttio.chaos``) injected.

    ``applied`` says whether the request was carried out before the fault hit
    (a timeout or reset "after apply"): then ``applied_status`` is the status the
    fake's handler produced, which the client never saw. A 500 or 429 is never
    applied. For a write, ``applied and applied_status < 400`` means the change
    happened although the caller got no answer.
    """

    kind: ChaosKind
    endpoint: str
    method: str
    path: str
    json: Any
    form: dict[str, str] | None
    applied: bool
    applied_status: int | None = None
    time: float = 0.0


@dataclass
class _Chaos:
    rate: float
    kinds: tuple[ChaosKind, ...]
    endpoints: frozenset[str] | None  # None: every endpoint
    rng: random.Random
    after_apply: float
    retry_after: float


@dataclass(frozen=True)
class Route:
    """One row of the routing table: method + full-path regex -> handler."""

    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Callable[[RequestContext], httpx.Response]
    kind: RouteKind


@dataclass
class RequestContext:
    """A parsed request, handed to route handlers."""

    request: httpx.Request
    endpoint: str
    route: Route | None
    path_params: dict[str, str]
    query: dict[str, str]
    form: dict[str, str] | None
    json: Any
    json_error: str | None
    fault: _Fault | None = None
    delay: float = 0.0
    # The random-fault mode's record of the fault in ``fault``, if it chose it.
    chaos: ChaosEvent | None = None
    # Set when rate-limit enforcement refuses the request: the wall-clock time
    # at which the workspace's window has room again.
    throttled_until: float | None = None


@dataclass
class _Fault:
    remaining: int
    status: int = 500
    body: Any = None
    headers: dict[str, str] | None = None
    exception: type[Exception] | Exception | None = None
    # Carry the request out first, then fail it (the random-fault mode's "after apply").
    apply_first: bool = False


@dataclass
class _Delay:
    seconds: float
    remaining: int | None  # None: every call until cleared


class _Reply(Exception):
    """Raised by handlers to answer early with a finished response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# --- small response helpers ---------------------------------------------------


def attio_error(
    status: int, message: str, *, code: str | None = None, type_: str | None = None
) -> httpx.Response:
    """An error in the body shape every Attio REST error uses."""
    default_type, default_code = _ATTIO_ERROR_KINDS.get(
        status, ("api_error", "internal_server_error")
    )
    body = {
        "status_code": status,
        "type": type_ or default_type,
        "code": code or default_code,
        "message": message,
    }
    return httpx.Response(status, json=body)


def oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """An RFC 6749 section 5.2 error response."""
    body = {"error": error, "error_description": description}
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    return httpx.Response(status, json=body, headers=all_headers)


def _html(status: int, page: str) -> httpx.Response:
    return httpx.Response(status, text=page, headers={"Content-Type": "text/html; charset=utf-8"})


def _redirect(target: str, params: Mapping[str, str | None]) -> httpx.Response:
    """302 to ``target`` with ``params`` added to whatever query it already has."""
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    location = urlunsplit(parts._replace(query=urlencode(query)))
    return httpx.Response(302, headers={"Location": location})


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _fixed_uuid(name: str) -> str:
    # Stable ids, so printed server output and fixtures stay the same run to run.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://fake-attio.test/{name}"))


def _default_workspaces() -> list[dict[str, str]]:
    return [
        {"id": _fixed_uuid("workspace/acme"), "name": "Acme", "slug": "acme"},
        {"id": _fixed_uuid("workspace/globex"), "name": "Globex", "slug": "globex"},
    ]


# --- the fake -----------------------------------------------------------------


class FakeAttio:
    """A stateful, thread-safe fake of Attio's OAuth server and REST API.

    Endpoint names (used in ``calls``, ``count``, ``fail_next`` and ``delay``):
    ``authorize``, ``token`` (authorization_code and any other grant),
    ``refresh`` (grant_type=refresh_token), ``introspect``, ``revoke``, ``self``,
    the REST endpoints listed in ``rest.ROUTES`` (``objects.list``,
    ``records.query``, ``notes.create``...), and ``unknown`` for requests no
    route matches. ``"*"`` in ``fail_next`` and ``delay`` matches every endpoint.

    Each workspace has its own data (``store(workspace)``), seeded as
    ``seed.py`` describes and re-seeded by ``reset()``.

    ``latency`` delays every response by that many seconds (outside the lock).
    Authenticated ``/v2`` requests are always counted per workspace
    (``peak_rate``); with ``enforce_rate_limits`` the fake also answers 429 past
    ``rate_limits`` (Attio's 100 reads and 25 writes per second by default) in
    any sliding one-second window.

    ``chaos(rate, kinds, endpoints, seed=...)`` turns on a random-fault mode:
    timeouts, resets, 500s and 429s at random, each kept in ``chaos_events``
    (with whether the request was applied before its answer was lost).
    """

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        redirect_uris: Iterable[str] = (),
        token_shape: TokenShape = "static",
        access_token_lifetime: int = 3600,
        workspaces: Iterable[Mapping[str, Any]] | None = None,
        scopes: str = DEFAULT_SCOPES,
        strict_spec: bool = True,
        server_hang_seconds: float = 30.0,
        latency: float = 0.0,
        enforce_rate_limits: bool = False,
        rate_limits: Mapping[RateKind, int] | None = None,
    ) -> None:
        if token_shape not in ("static", "refreshing"):
            raise ValueError(f"token_shape must be static or refreshing: {token_shape}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.token_shape: TokenShape = token_shape
        self.access_token_lifetime = access_token_lifetime
        self.scopes = scopes
        self.strict_spec = strict_spec
        # Server mode only: how long an injected timeout keeps the request hanging.
        self.server_hang_seconds = server_hang_seconds
        self.latency = latency
        self.enforce_rate_limits = enforce_rate_limits
        self.rate_limits: dict[RateKind, int] = {**DEFAULT_LIMITS, **(rate_limits or {})}
        self.workspaces = [
            Workspace(
                id=str(ws["id"]),
                name=str(ws["name"]),
                slug=str(ws["slug"]),
                logo_url=ws.get("logo_url"),
                member_id=str(ws.get("member_id") or _fixed_uuid(f"member/{ws['slug']}")),
            )
            for ws in (workspaces if workspaces is not None else _default_workspaces())
        ]
        if not self.workspaces:
            raise ValueError("FakeAttio needs at least one workspace")

        self._lock = threading.RLock()
        # Set while a loopback server shuts down, so hanging requests let go.
        self.stopping = threading.Event()
        self._routes: list[Route] = []
        self._build_routes()
        self._reset_state()
        self.asgi_app = FakeAttioASGI(self)

    # --- routing --------------------------------------------------------------

    def _build_routes(self) -> None:
        # To add a REST endpoint: write a handler taking a RequestContext (it runs
        # under the lock; call self.require_token(ctx) first), then add a row, e.g.
        # self.add_route("POST", r"/v2/objects/(?P<object>[^/]+)/records/query",
        #                "records.query", self._records_query)
        self.add_route("GET", "/authorize", "authorize", self._authorize_get, "html")
        self.add_route("POST", "/authorize", "authorize", self._authorize_post, "html")
        self.add_route("POST", "/oauth/token", "token", self._token, "oauth")
        self.add_route("POST", "/oauth/introspect", "introspect", self._introspect, "oauth")
        self.add_route("POST", "/oauth/revoke", "revoke", self._revoke, "oauth")
        self.add_route("GET", "/v2/self", "self", self._self, "api")
        rest.register(self)
        meetings.register(self)
        schema_writes.register(self)

    def add_route(
        self,
        method: str,
        path_regex: str,
        endpoint: str,
        handler: Callable[[RequestContext], httpx.Response],
        kind: RouteKind = "api",
    ) -> None:
        """Register a handler for ``method`` and a full-match path regex.

        Named groups in the regex become ``ctx.path_params``. Later rows win, so a
        test can override a built-in endpoint.
        """
        route = Route(method.upper(), re.compile(path_regex), endpoint, handler, kind)
        with self._lock:
            self._routes.insert(0, route)

    def endpoints(self, kind: RouteKind | None = None) -> list[str]:
        """The endpoint names the fake answers (of one route kind, if given)."""
        with self._lock:
            return sorted({r.endpoint for r in self._routes if kind is None or r.kind == kind})

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        with self._lock:
            routes = list(self._routes)
        for route in routes:
            found = route.pattern.fullmatch(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None, {}

    # --- state ----------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._tokens: dict[str, TokenRecord] = {}
            self._codes: dict[str, AuthCode] = {}
            self._calls: list[Call] = []
            self._faults: dict[str, list[_Fault]] = {}
            self._delays: dict[str, _Delay] = {}
            self._violations: list[SpecViolation] = []
            self._clock_offset = 0.0
            self._stores: dict[str, Store] = {
                ws.id: build_store(ws.id, ws.slug, ws.member_id) for ws in self.workspaces
            }
            self._rates = RateTracker()
            self._chaos: _Chaos | None = None
            self._chaos_events: list[ChaosEvent] = []

    def reset(self) -> None:
        """Forget tokens, codes, calls, injected faults and delays (and the random-fault
        mode), the clock and the request counts, and put every workspace's data back to
        the seed."""
        self._reset_state()

    def now(self) -> float:
        """The fake's clock: wall time plus whatever ``advance`` added."""
        with self._lock:
            return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (expires codes and tokens without sleeping)."""
        with self._lock:
            self._clock_offset += seconds

    def workspace(self, key: str | None = None) -> Workspace:
        """A workspace by id, slug or name; the first one when ``key`` is None."""
        if key is None:
            return self.workspaces[0]
        for ws in self.workspaces:
            if key in (ws.id, ws.slug, ws.name):
                return ws
        raise KeyError(f"no fake workspace {key!r}")

    def store(self, workspace: str | None = None) -> Store:
        """The live data of a workspace (id, slug or name; default the first).

        Tests may read it freely; change it only under ``with fake.lock:``.
        """
        ws = self.workspace(workspace)
        return self._stores[ws.id]

    @property
    def lock(self) -> threading.RLock:
        """The lock every request is handled under."""
        return self._lock

    def record_id(self, object_slug: str, name: str, workspace: str | None = None) -> str:
        """The id of the record of ``object_slug`` named ``name`` (e.g. a seeded
        ``("people", "Ada Lovelace")``)."""
        with self._lock:
            return self.store(workspace).record_id(object_slug, name)

    def peak_rate(self, workspace: str, kind: RateKind = "read", window: float = 1.0) -> int:
        """The most ``kind`` requests of a workspace (id, slug or name) that
        arrived within any ``window`` seconds, rate-limited ones included."""
        workspace_id = self.workspace(workspace).id
        with self._lock:
            return self._rates.peak(workspace_id, kind, window)

    def _workspace_by_id(self, workspace_id: str) -> Workspace:
        return next(ws for ws in self.workspaces if ws.id == workspace_id)

    # --- inspection -----------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every recorded call, oldest first."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, endpoint: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == endpoint]

    def count(self, endpoint: str) -> int:
        return len(self.calls_to(endpoint))

    def last(self, endpoint: str) -> Call:
        found = self.calls_to(endpoint)
        if not found:
            raise AssertionError(f"no call to {endpoint!r} was recorded")
        return found[-1]

    @property
    def spec_violations(self) -> list[SpecViolation]:
        with self._lock:
            return list(self._violations)

    def tokens(self) -> list[TokenRecord]:
        """Copies of every token record."""
        with self._lock:
            return [replace(t) for t in self._tokens.values()]

    def token_info(self, token: str) -> TokenRecord | None:
        with self._lock:
            found = self._tokens.get(token)
            return replace(found) if found else None

    def all_secrets(self) -> list[str]:
        """Every secret the fake knows, for leak-scanning tests.

        The client secret, every token and API key, and every authorization code.
        """
        with self._lock:
            return [self.client_secret, *self._tokens, *self._codes]

    # --- test controls ----------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        status: int = 500,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        *,
        exception: type[Exception] | Exception | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``endpoint`` fail.

        With ``exception`` (e.g. ``httpx.ConnectTimeout``), the transports raise it.
        In server mode a timeout class makes the request hang (up to
        ``server_hang_seconds``) and any other exception drops the connection
        mid-response (the client sees ``httpx.RemoteProtocolError``). Otherwise the
        call answers ``status`` with ``body`` (dict -> JSON, str/bytes -> as is;
        default: an Attio- or OAuth-shaped error; a callable is given the request and
        returns the body, for a hostile Attio that echoes it). A 429 without a Retry-After
        header gets one, as an HTTP date one second ahead.
        """
        fault = _Fault(times, status, body, dict(headers or {}), exception)
        with self._lock:
            self._faults.setdefault(endpoint, []).append(fault)

    def rate_limit_next(
        self,
        endpoint: str,
        retry_after: float = 1,
        *,
        http_date: bool = True,
        times: int = 1,
    ) -> None:
        """Answer the next calls with Attio's 429 and a ``Retry-After`` header.

        Attio documents Retry-After as an HTTP date; ``http_date=False`` sends
        whole seconds instead, for testing the fallback parser.
        """
        if http_date:
            value = formatdate(self.now() + retry_after, usegmt=True)
        else:
            value = str(int(retry_after))
        self.fail_next(endpoint, 429, headers={"Retry-After": value}, times=times)

    def delay(self, endpoint: str, seconds: float, times: int | None = None) -> None:
        """Delay calls to ``endpoint``; ``times=None`` keeps delaying until
        ``delay(endpoint, 0)`` or ``reset()``."""
        with self._lock:
            if seconds <= 0:
                self._delays.pop(endpoint, None)
            else:
                self._delays[endpoint] = _Delay(seconds, times)

    def chaos(
        self,
        rate: float = 0.2,
        kinds: Iterable[ChaosKind] = CHAOS_KINDS,
        endpoints: str | Iterable[str] = "*",
        *,
        seed: int | None = None,
        after_apply: float = 0.5,
        retry_after: float = 1.0,
    ) -> None:
        """Random-fault mode: fail a share ``rate`` of the matching requests at random.

        Each faulted request gets one of ``kinds``, chosen evenly:

        - ``"timeout"``: like ``fail_next(exception=httpx.ReadTimeout)``; in server
          mode the request hangs until the client gives up (at most
          ``server_hang_seconds``);
        - ``"reset"``: like ``fail_next(exception=httpx.RemoteProtocolError)``; in
          server mode the connection drops after the response headers;
        - ``"500"``: an Attio-shaped 500, the request not carried out;
        - ``"429"``: Attio's rate-limit answer with ``Retry-After`` (an HTTP date
          ``retry_after`` seconds ahead), the request not carried out.

        A timeout or reset comes "after apply" with probability ``after_apply``: the
        request is carried out (a write is applied) and then its answer is lost, as
        happens when a connection breaks after the server did the work. Every fault
        is kept in ``chaos_events``. ``endpoints`` is ``"*"`` or endpoint names (see
        the class docstring). Faults queued with ``fail_next`` take precedence.
        ``rate=0`` (or ``chaos_off()``) ends the mode; ``seed`` makes it repeatable.
        """
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in CHAOS_KINDS]
        if unknown or not kinds:
            raise ValueError(f"chaos kinds must be some of {CHAOS_KINDS}: {kinds}")
        if not 0 <= rate <= 1 or not 0 <= after_apply <= 1:
            raise ValueError("rate and after_apply are probabilities (0 to 1)")
        if isinstance(endpoints, str):
            chosen = None if endpoints == "*" else frozenset([endpoints])
        else:
            chosen = frozenset(endpoints)
        with self._lock:
            self._chaos = (
                _Chaos(rate, kinds, chosen, random.Random(seed), after_apply, retry_after)
                if rate > 0
                else None
            )

    def chaos_off(self) -> None:
        """End the random-fault mode (its events are kept)."""
        with self._lock:
            self._chaos = None

    @property
    def chaos_events(self) -> list[ChaosEvent]:
        """Copies of every fault the random-fault mode injected, oldest first."""
        with self._lock:
            return [replace(e) for e in self._chaos_events]

    def chaos_counts(self) -> Counter[str]:
        """How many faults of each kind the random-fault mode injected."""
        with self._lock:
            return Counter(e.kind for e in self._chaos_events)

    def deactivate(self, token: str) -> None:
        """Make one token answer ``active: false`` (and refuse to refresh)."""
        with self._lock:
            self._tokens[token].active = False

    def expire(self, token: str) -> None:
        """Make a token expired now (a refresh token of its grant still works)."""
        with self._lock:
            self._tokens[token].expires_at = self.now() - 1

    def revoke_all(self, workspace: str | None = None) -> None:
        """Deactivate every token, or those of one workspace (id, slug or name)."""
        with self._lock:
            workspace_id = self.workspace(workspace).id if workspace else None
            for record in self._tokens.values():
                if workspace_id is None or record.workspace_id == workspace_id:
                    record.active = False

    def add_api_key(
        self,
        workspace: str | None = None,
        scopes: str | None = None,
        *,
        token: str | None = None,
    ) -> str:
        """Register a workspace API key, usable as a Bearer token like an access
        token. Its ``/v2/self`` ``client_id`` is a random id, not the app's."""
        ws = self.workspace(workspace)
        token = token or "fake_key_" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = TokenRecord(
                token=token,
                kind="api_key",
                workspace_id=ws.id,
                client_id=str(uuid.uuid4()),
                scopes=self.scopes if scopes is None else scopes,
                member_id=ws.member_id,
                grant_id=str(uuid.uuid4()),
                issued_at=self.now(),
                expires_at=None,
            )
        return token

    def issue_tokens(self, workspace: str | None = None) -> dict[str, Any]:
        """Mint tokens as a successful code exchange would, skipping the flow.

        Returns the /oauth/token response body for the configured token shape.
        """
        ws = self.workspace(workspace)
        with self._lock:
            return self._mint(ws.id, ws.member_id, str(uuid.uuid4()))

    def approve(
        self,
        authorize_url: str,
        workspace: str | None = None,
        decision: str = "approve",
    ) -> str:
        """Act as the user on the consent page: returns the redirect Location.

        ``authorize_url`` is the URL the portal sent the browser to (any host).
        Raises AssertionError when the fake refuses to redirect (bad client or
        redirect URI).
        """
        parts = urlsplit(authorize_url)
        url = urlunsplit(("https", "app.attio.com", parts.path, parts.query, ""))
        shown = self.handle(httpx.Request("GET", url))
        if shown.status_code == 302:
            return shown.headers["location"]
        if shown.status_code != 200:
            raise AssertionError(f"authorize refused ({shown.status_code}): {shown.text}")
        form = dict(parse_qsl(parts.query, keep_blank_values=True))
        form["decision"] = decision
        if workspace is not None:
            form["workspace"] = self.workspace(workspace).id
        answer = self.handle(httpx.Request("POST", "https://app.attio.com/authorize", data=form))
        if answer.status_code != 302:
            raise AssertionError(f"authorize refused ({answer.status_code}): {answer.text}")
        return answer.headers["location"]

    # --- transports and servers ----------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """A transport for httpx.Client or AsyncClient (delays block the thread)."""
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        """A transport for httpx.AsyncClient whose delays use asyncio.sleep."""
        return httpx.MockTransport(self.handle_async)

    def httpx2_transport(self) -> Any:
        """A transport for httpx2 clients (authlib's OAuth client uses httpx2)."""
        import httpx2

        def handle(request2: httpx2.Request) -> httpx2.Response:
            request = httpx.Request(
                request2.method,
                str(request2.url),
                headers=list(request2.headers.multi_items()),
                content=request2.read(),
            )
            try:
                response = self.handle(request)
            except httpx.RequestError as e:
                # The same failure, as the exception class httpx2 callers catch.
                raise getattr(httpx2, type(e).__name__)(str(e), request=request2) from e
            return httpx2.Response(
                response.status_code,
                headers=list(response.headers.multi_items()),
                content=response.content,
                request=request2,
            )

        return httpx2.MockTransport(handle)

    def asgi(self) -> Any:
        """The ASGI app (same object as ``asgi_app``), for uvicorn."""
        return self.asgi_app

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, nodelay: bool = True
    ) -> AbstractContextManager[str]:
        """Context manager running the fake on a loopback port in a thread.

        ``with fake.serve() as base_url:`` yields e.g. ``http://127.0.0.1:54321``.
        ``nodelay=True`` turns Nagle's algorithm off (see ``server.bind_socket``).
        """
        from .server import serve

        return serve(self, host=host, port=port, nodelay=nodelay)

    # --- request processing ---------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (blocking on injected delays with time.sleep)."""
        ctx = self.prepare(request)
        if ctx.delay:
            time.sleep(ctx.delay)
        return self.finish(ctx)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        """Answer one request, awaiting injected delays with asyncio.sleep."""
        ctx = self.prepare(request)
        if ctx.delay:
            await asyncio.sleep(ctx.delay)
        return self.finish(ctx)

    def prepare(self, request: httpx.Request) -> RequestContext:
        """Parse a request, find its route and take any injected fault or delay."""
        request.read()
        route, params = self._match(request.method, request.url.path)
        query = dict(request.url.params.multi_items())
        form, body, json_error = self._parse_body(request)
        endpoint = route.endpoint if route else "unknown"
        if endpoint == "token" and (form or {}).get("grant_type") == "refresh_token":
            endpoint = "refresh"
        ctx = RequestContext(request, endpoint, route, params, query, form, body, json_error)
        with self._lock:
            ctx.fault = self._take_fault(endpoint)
            if ctx.fault is None and self._chaos is not None:
                ctx.fault = self._roll_chaos(ctx)
            ctx.delay = self._take_delay(endpoint) + self.latency
            self._count_request(ctx)
        return ctx

    def _count_request(self, ctx: RequestContext) -> None:
        """Rate accounting for an authenticated /v2 request. Lock held."""
        request = ctx.request
        fault = ctx.fault
        if not request.url.path.startswith("/v2/") or (fault and fault.exception):
            return
        token = self._bearer_token(request)
        record = self._tokens.get(token) if token else None
        if record is None or not self._introspection(token)["active"]:
            return
        kind = rate_kind(request.method, request.url.path)
        enforce = self.enforce_rate_limits and fault is None
        now = time.monotonic()
        free_at = self._rates.arrive(
            record.workspace_id, kind, now, limit=self.rate_limits[kind] if enforce else None
        )
        if free_at is not None:
            ctx.throttled_until = self.now() + (free_at - now)

    def finish(self, ctx: RequestContext) -> httpx.Response:
        """Produce the response for a prepared request, and record the call.

        Raises the injected exception when the fault asks for one.
        """
        fault = ctx.fault
        if fault is not None and fault.exception is not None:
            exc = fault.exception
            if fault.apply_first:
                self.apply_before_fault(ctx)
            self.record(ctx, None, error=getattr(exc, "__name__", type(exc).__name__))
            if isinstance(exc, BaseException):
                raise exc
            if issubclass(exc, httpx.RequestError):
                raise exc(f"fake_attio injected {exc.__name__}", request=ctx.request)
            raise exc(f"fake_attio injected {exc.__name__}")
        if fault is not None:
            response = self._fault_response(ctx, fault)
        elif ctx.throttled_until is not None:
            # Attio's Retry-After is an HTTP date (whole seconds): round up.
            retry_after = formatdate(math.ceil(ctx.throttled_until), usegmt=True)
            response = attio_error(429, "Rate limit exceeded, please try again later")
            response.headers["Retry-After"] = retry_after
        else:
            response = self._dispatch(ctx)
        self.record(ctx, response.status_code)
        return response

    def apply_before_fault(self, ctx: RequestContext) -> None:
        """Carry out a request whose answer an injected fault will then lose."""
        response = self._dispatch(ctx)
        if ctx.chaos is not None:
            with self._lock:
                ctx.chaos.applied_status = response.status_code

    def _roll_chaos(self, ctx: RequestContext) -> _Fault | None:
        """The random-fault mode's fault for this request, if it draws one. Lock held."""
        chaos = self._chaos
        assert chaos is not None
        if chaos.endpoints is not None and ctx.endpoint not in chaos.endpoints:
            return None
        if chaos.rng.random() >= chaos.rate:
            return None
        kind = chaos.rng.choice(chaos.kinds)
        after = kind in ("timeout", "reset") and chaos.rng.random() < chaos.after_apply
        if kind == "timeout":
            fault = _Fault(1, exception=httpx.ReadTimeout, apply_first=after)
        elif kind == "reset":
            fault = _Fault(1, exception=httpx.RemoteProtocolError, apply_first=after)
        elif kind == "429":
            retry_after = formatdate(self.now() + chaos.retry_after, usegmt=True)
            fault = _Fault(1, 429, headers={"Retry-After": retry_after})
        else:
            fault = _Fault(1, 500)
        ctx.chaos = ChaosEvent(
            kind=kind,
            endpoint=ctx.endpoint,
            method=ctx.request.method,
            path=ctx.request.url.path,
            json=ctx.json,
            form=ctx.form,
            applied=after,
            time=self.now(),
        )
        self._chaos_events.append(ctx.chaos)
        return fault

    def record(self, ctx: RequestContext, status: int | None, error: str | None = None) -> None:
        request = ctx.request
        call = Call(
            endpoint=ctx.endpoint,
            method=request.method,
            path=request.url.path,
            url=str(request.url),
            query=ctx.query,
            form=ctx.form,
            json=ctx.json,
            content=request.content,
            headers={k.lower(): v for k, v in request.headers.items()},
            status=status,
            error=error,
            time=self.now(),
        )
        with self._lock:
            self._calls.append(call)

    @staticmethod
    def _parse_body(
        request: httpx.Request,
    ) -> tuple[dict[str, str] | None, Any, str | None]:
        content = request.content
        if not content:
            return None, None, None
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        media_type = media_type.lower()
        text = content.decode("utf-8", "replace")
        if media_type == "application/x-www-form-urlencoded":
            return dict(parse_qsl(text, keep_blank_values=True)), None, None
        if media_type == "application/json" or media_type.endswith("+json"):
            try:
                return None, json.loads(text), None
            except ValueError as exc:
                return None, None, f"request body is not valid JSON: {exc}"
        return None, None, f"unsupported Content-Type {media_type or '(none)'!r}"

    def _take_fault(self, endpoint: str) -> _Fault | None:
        for key in (endpoint, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
                return fault
        return None

    def _take_delay(self, endpoint: str) -> float:
        for key in (endpoint, "*"):
            delay = self._delays.get(key)
            if delay is not None:
                if delay.remaining is not None:
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        del self._delays[key]
                return delay.seconds
        return 0.0

    def _fault_response(self, ctx: RequestContext, fault: _Fault) -> httpx.Response:
        headers = dict(fault.headers or {})
        if fault.status == 429 and not any(k.lower() == "retry-after" for k in headers):
            headers["Retry-After"] = formatdate(self.now() + 1, usegmt=True)
        body = fault.body
        if callable(body):
            body = body(ctx.request)
        if body is None:
            default = self._default_error(ctx, fault.status)
            default.headers.update(headers)
            return default
        if isinstance(body, bytes):
            return httpx.Response(fault.status, content=body, headers=headers)
        if isinstance(body, str):
            return httpx.Response(fault.status, text=body, headers=headers)
        return httpx.Response(fault.status, json=body, headers=headers)

    def _default_error(self, ctx: RequestContext, status: int) -> httpx.Response:
        kind = ctx.route.kind if ctx.route else "api"
        if status == 429:
            return attio_error(429, "Rate limit exceeded, please try again later")
        if kind == "html":
            return _html(status, error_page(f"Fake Attio answered {status} (injected)."))
        if kind == "oauth":
            error = {400: "invalid_request", 401: "invalid_client"}.get(
                status,
                "temporarily_unavailable" if status == 503 else "server_error",
            )
            return oauth_error(status, error, f"Injected {status} from fake Attio")
        return attio_error(status, f"Injected {status} from fake Attio")

    def _dispatch(self, ctx: RequestContext) -> httpx.Response:
        method, path = ctx.request.method, ctx.request.url.path
        is_api = path.startswith("/v2/")
        if is_api and self.strict_spec:
            problem = self._spec_problem(ctx)
            if problem is not None:
                with self._lock:
                    self._violations.append(SpecViolation("request", method, path, problem))
                return attio_error(400, problem, code="validation_type")
        if ctx.route is None:
            if is_api:
                return attio_error(404, f"fake_attio does not implement {method} {path}")
            return httpx.Response(404, text=f"fake_attio: no route for {method} {path}")
        try:
            with self._lock:
                response = ctx.route.handler(ctx)
        except _Reply as reply:
            response = reply.response
        if is_api and self.strict_spec and ctx.route.kind == "api":
            self._check_own_response(ctx, response)
        return response

    def _spec_problem(self, ctx: RequestContext) -> str | None:
        if ctx.json_error is not None:
            return ctx.json_error
        try:
            spec.validate_request(ctx.request.method, ctx.request.url.path, ctx.query, ctx.json)
        except AssertionError as exc:
            return str(exc)
        return None

    def _check_own_response(self, ctx: RequestContext, response: httpx.Response) -> None:
        # A failure here is a bug in the fake, so it is loud: recorded and raised.
        method, path = ctx.request.method, ctx.request.url.path
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        try:
            spec.validate_response(method, path, response.status_code, body)
        except AssertionError as exc:
            with self._lock:
                self._violations.append(SpecViolation("response", method, path, str(exc)))
            raise

    # --- OAuth: authorize -----------------------------------------------------

    def _client_problem(self, params: Mapping[str, str]) -> str | None:
        """Why the client or redirect URI cannot be trusted (never redirect then)."""
        if params.get("client_id") != self.client_id:
            return f"Unknown client_id {params.get('client_id')!r}."
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return "redirect_uri is required."
        if self.redirect_uris and redirect_uri not in self.redirect_uris:
            return f"redirect_uri {redirect_uri!r} is not registered for this app."
        return None

    def _request_problem(self, params: Mapping[str, str]) -> httpx.Response | None:
        """Errors reported back to the client by redirect (RFC 6749 4.1.2.1)."""
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if params.get("response_type") != "code":
            return _redirect(
                redirect_uri,
                {
                    "error": "unsupported_response_type",
                    "error_description": "response_type must be code",
                    "state": state,
                },
            )
        method = params.get("code_challenge_method")
        if params.get("code_challenge") and (method or "plain") not in (
            "S256",
            "plain",
        ):
            return _redirect(
                redirect_uri,
                {
                    "error": "invalid_request",
                    "error_description": "code_challenge_method must be S256",
                    "state": state,
                },
            )
        return None

    def _authorize_get(self, ctx: RequestContext) -> httpx.Response:
        params = ctx.query
        problem = self._client_problem(params)
        if problem:
            return _html(400, error_page(problem))
        refusal = self._request_problem(params)
        if refusal is not None:
            return refusal
        hidden = {k: v for k, v in params.items() if k not in ("decision", "workspace")}
        return _html(
            200,
            consent_page(
                client_id=self.client_id,
                redirect_uri=params["redirect_uri"],
                scopes=self.scopes,
                workspaces=[(ws.id, f"{ws.name} ({ws.slug})") for ws in self.workspaces],
                hidden=hidden,
            ),
        )

    def _authorize_post(self, ctx: RequestContext) -> httpx.Response:
        params = dict(ctx.form or {})
        decision = params.pop("decision", None)
        workspace_id = params.pop("workspace", None)
        problem = self._client_problem(params)
        if problem:
            return _html(400, error_page(problem))
        refusal = self._request_problem(params)
        if refusal is not None:
            return refusal
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if decision == "deny":
            return _redirect(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "The user denied the authorization request.",
                    "state": state,
                },
            )
        if decision != "approve":
            return _html(400, error_page("decision must be approve or deny."))
        try:
            ws = self.workspace(workspace_id) if workspace_id else self.workspaces[0]
        except KeyError:
            return _html(400, error_page(f"Unknown workspace {workspace_id!r}."))
        now = self.now()
        code = "fake_code_" + secrets.token_urlsafe(32)
        self._codes[code] = AuthCode(
            code=code,
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            workspace_id=ws.id,
            member_id=ws.member_id,
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=params.get("code_challenge_method") or None,
            issued_at=now,
            expires_at=now + CODE_LIFETIME,
            params=params,
        )
        return _redirect(redirect_uri, {"code": code, "state": state})

    # --- OAuth: token ---------------------------------------------------------

    def _client_credentials(
        self, request: httpx.Request, form: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        """client_secret_post (Attio's documented way), else HTTP Basic."""
        if "client_id" in form:
            return form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except ValueError:
                return None, None
            client_id, _, secret = decoded.partition(":")
            return unquote(client_id), unquote(secret)
        return None, None

    def _check_client(
        self, request: httpx.Request, form: Mapping[str, str], *, required: bool
    ) -> httpx.Response | None:
        client_id, secret = self._client_credentials(request, form)
        if client_id is None and not required:
            return None
        if client_id == self.client_id and hmac.compare_digest(
            (secret or "").encode(), self.client_secret.encode()
        ):
            return None
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed.",
            headers={"WWW-Authenticate": 'Basic realm="fake-attio"'},
        )

    def _token(self, ctx: RequestContext) -> httpx.Response:
        form = ctx.form or {}
        refusal = self._check_client(ctx.request, form, required=True)
        if refusal is not None:
            return refusal
        grant_type = form.get("grant_type")
        if not grant_type:
            return oauth_error(400, "invalid_request", "grant_type is required.")
        if grant_type == "authorization_code":
            return self._grant_code(form)
        if grant_type == "refresh_token" and self.token_shape == "refreshing":
            return self._grant_refresh(form)
        return oauth_error(
            400,
            "unsupported_grant_type",
            f"grant_type {grant_type!r} is not supported.",
        )

    def _grant_code(self, form: Mapping[str, str]) -> httpx.Response:
        code = form.get("code")
        if not code:
            return oauth_error(400, "invalid_request", "code is required.")
        record = self._codes.get(code)
        if record is None or record.client_id != self.client_id:
            return oauth_error(400, "invalid_grant", "Unknown authorization code.")
        if record.used:
            return oauth_error(400, "invalid_grant", "Authorization code already used.")
        if record.expires_at <= self.now():
            return oauth_error(400, "invalid_grant", "Authorization code expired.")
        redirect_uri = form.get("redirect_uri")
        # Attio does not document redirect_uri here, so it is only checked if sent.
        if redirect_uri is not None and redirect_uri != record.redirect_uri:
            return oauth_error(400, "invalid_grant", "redirect_uri does not match.")
        if record.code_challenge:
            verifier = form.get("code_verifier")
            if not verifier:
                return oauth_error(400, "invalid_grant", "code_verifier is required.")
            expected = _s256(verifier) if record.code_challenge_method == "S256" else verifier
            if not hmac.compare_digest(expected, record.code_challenge):
                return oauth_error(400, "invalid_grant", "code_verifier does not match.")
        record.used = True
        body = self._mint(record.workspace_id, record.member_id, str(uuid.uuid4()))
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    def _grant_refresh(self, form: Mapping[str, str]) -> httpx.Response:
        token = form.get("refresh_token")
        if not token:
            return oauth_error(400, "invalid_request", "refresh_token is required.")
        record = self._tokens.get(token)
        if record is None or record.kind != "refresh":
            return oauth_error(400, "invalid_grant", "Unknown refresh token.")
        if record.used:
            return oauth_error(400, "invalid_grant", "Refresh token already used.")
        if not record.active:
            return oauth_error(400, "invalid_grant", "Refresh token revoked.")
        if record.client_id != self.client_id:
            return oauth_error(400, "invalid_grant", "Refresh token of another client.")
        # Rotation: the old refresh token dies, the old access token lives on
        # until it expires.
        record.used = True
        record.active = False
        body = self._mint(record.workspace_id, record.member_id, record.grant_id)
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    def _mint(self, workspace_id: str, member_id: str, grant_id: str) -> dict[str, Any]:
        """Create tokens for a grant; returns the /oauth/token body. Lock held."""
        now = self.now()
        refreshing = self.token_shape == "refreshing"
        access = "fake_at_" + secrets.token_urlsafe(32)
        common = {
            "workspace_id": workspace_id,
            "client_id": self.client_id,
            "scopes": self.scopes,
            "member_id": member_id,
            "grant_id": grant_id,
            "issued_at": now,
        }
        self._tokens[access] = TokenRecord(
            token=access,
            kind="access",
            expires_at=now + self.access_token_lifetime if refreshing else None,
            **common,
        )
        # Attio's documented response has only these two fields.
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if refreshing:
            refresh = "fake_rt_" + secrets.token_urlsafe(32)
            self._tokens[refresh] = TokenRecord(
                token=refresh, kind="refresh", expires_at=None, **common
            )
            body["expires_in"] = self.access_token_lifetime
            body["refresh_token"] = refresh
        return body

    # --- OAuth: introspect and revoke, and /v2/self -----------------------------

    def _bearer_token(self, request: httpx.Request) -> str | None:
        """The token from ``Authorization: Bearer`` (or Attio's Basic variant,
        token as username and an empty password)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return value
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except ValueError:
                return None
            return decoded.partition(":")[0] or None
        return None

    def _token_from_header(self, ctx: RequestContext) -> str:
        token = self._bearer_token(ctx.request)
        if token is None:
            header = ctx.request.headers.get("authorization")
            message = (
                "Missing Authorization header."
                if header is None
                else "Authorization header must be 'Bearer <token>'."
            )
            raise _Reply(attio_error(401, message))
        return token

    def require_token(self, ctx: RequestContext) -> TokenRecord:
        """For REST handlers: the caller's active token, or a 401 reply."""
        token = self._token_from_header(ctx)
        if self._introspection(token)["active"]:
            return self._tokens[token]
        raise _Reply(attio_error(401, "The access token is invalid or has expired."))

    def _introspection(self, token: str) -> dict[str, Any]:
        """The /v2/self and /oauth/introspect body for a token. Lock held."""
        record = self._tokens.get(token)
        if (
            record is None
            or record.kind == "refresh"
            or not record.active
            or (record.expires_at is not None and record.expires_at <= self.now())
        ):
            return {"active": False}
        ws = self._workspace_by_id(record.workspace_id)
        return {
            "active": True,
            "scope": record.scopes,
            "client_id": record.client_id,
            "token_type": "Bearer",
            "exp": int(record.expires_at) if record.expires_at is not None else None,
            "iat": int(record.issued_at),
            "sub": ws.id,
            "aud": record.client_id,
            "iss": "attio.com",
            "authorized_by_workspace_member_id": record.member_id,
            "workspace_id": ws.id,
            "workspace_name": ws.name,
            "workspace_slug": ws.slug,
            "workspace_logo_url": ws.logo_url,
        }

    def _self(self, ctx: RequestContext) -> httpx.Response:
        # Unknown, revoked and expired tokens get 200 {"active": false}, as
        # documented; only a missing or malformed header gets 401.
        return httpx.Response(200, json=self._introspection(self._token_from_header(ctx)))

    def _introspect(self, ctx: RequestContext) -> httpx.Response:
        token = self._bearer_token(ctx.request) or (ctx.form or {}).get("token")
        if not token:
            return attio_error(401, "Missing Authorization header.")
        return httpx.Response(200, json=self._introspection(token))

    def _revoke(self, ctx: RequestContext) -> httpx.Response:
        form = ctx.form or {}
        refusal = self._check_client(ctx.request, form, required=False)
        if refusal is not None:
            return refusal
        token = self._bearer_token(ctx.request) or form.get("token")
        if not token:
            return oauth_error(400, "invalid_request", "No token to revoke.")
        record = self._tokens.get(token)
        if record is not None:
            # A grant's access and refresh tokens go together (RFC 7009 2.1).
            for other in self._tokens.values():
                if other.grant_id == record.grant_id:
                    other.active = False
        # Unknown tokens are not an error (RFC 7009 2.2).
        return httpx.Response(204)

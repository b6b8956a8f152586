"""Settings for Attio Portal, read from the environment (and `.env` when present).

Every variable is listed and explained in `.env.example`. With nothing set, the
portal runs in development mode: DEBUG on, SQLite and the embedded Celery broker
under `var/`. With DEBUG off, missing or insecure secrets stop it at start-up; with DEBUG
left unset, so does a host other than loopback.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from connections.crypto import DEVELOPMENT_KEY, KeyConfigError, KeyRing

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)

DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-never-use-this-key-in-production"
# An empty value counts as unset, so a copied .env.example works in development.
SECRET_KEY = env.str("SECRET_KEY", default="") or (DEVELOPMENT_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
# The public URL of the portal: the OAuth redirect URI and the MCP endpoint URL are
# built from it, so it must be the address users and MCP clients actually reach.
# The port `make run` and `make demo` serve on (attio_portal/devserver.py).
PORTAL_PORT = env.int("PORTAL_PORT", default=8000)
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default=f"http://127.0.0.1:{PORTAL_PORT}").rstrip("/")


def _is_loopback(host: str | None) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# DEBUG on by default suits a laptop, and only a laptop: a portal reached by a name or
# address other than loopback is a deployment, and a forgotten DEBUG there shows
# tracebacks and settings to anyone and signs with the development keys. Who really
# wants DEBUG on a LAN says so with DEBUG=true.
if "DEBUG" not in env.ENVIRON and not all(
    _is_loopback(host) for host in [urlsplit(PORTAL_BASE_URL).hostname, *ALLOWED_HOSTS]
):
    raise ImproperlyConfigured(
        "DEBUG is not set, so it defaults to on, but PORTAL_BASE_URL or ALLOWED_HOSTS "
        "names a host other than loopback. Set DEBUG=false for a deployment (see "
        ".env.example), or DEBUG=true explicitly for development on a network."
    )

# AES-256-GCM keys for OAuth tokens at rest, newest first; older keys only decrypt.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or (
    [DEVELOPMENT_KEY] if DEBUG else []
)
# Server-side secret for the HMAC-SHA256 digests of portal API keys.
API_KEY_HMAC_SECRET = env.str("API_KEY_HMAC_SECRET", default="") or (
    "development-api-key-secret" if DEBUG else ""
)


def _refuse(variable: str, problem: str) -> None:
    raise ImproperlyConfigured(
        f"{variable} {problem}. DEBUG is off, so the portal refuses to start; "
        f"set {variable} in the environment or .env (see .env.example)."
    )


if not DEBUG:
    if not SECRET_KEY:
        _refuse("SECRET_KEY", "is not set")
    if SECRET_KEY == DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("django-insecure"):
        _refuse("SECRET_KEY", "is the insecure development default")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        _refuse("SECRET_KEY", "is too short (use at least 50 random characters)")
    if not ALLOWED_HOSTS:
        _refuse("ALLOWED_HOSTS", "is empty")
    if "*" in ALLOWED_HOSTS:
        _refuse("ALLOWED_HOSTS", "contains '*'")
    if not FIELD_ENCRYPTION_KEYS:
        _refuse("FIELD_ENCRYPTION_KEYS", "is not set")
    if DEVELOPMENT_KEY in FIELD_ENCRYPTION_KEYS:
        _refuse("FIELD_ENCRYPTION_KEYS", "contains the development key")
    if len(API_KEY_HMAC_SECRET) < 32:
        _refuse("API_KEY_HMAC_SECRET", "is not set or shorter than 32 characters")
    # It is the OAuth issuer MCP clients check character for character, and the
    # address their tokens are sent to: https, but for a portal on loopback only (a
    # production-like run on one machine, as the benchmarks and fault tests do).
    if not PORTAL_BASE_URL.startswith("https://") and urlsplit(PORTAL_BASE_URL).hostname not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        _refuse("PORTAL_BASE_URL", "is not an https:// URL")

try:
    FIELD_ENCRYPTION_KEYRING = KeyRing.from_entries(FIELD_ENCRYPTION_KEYS)
except KeyConfigError as e:
    raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS is invalid: {e}") from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "corsheaders",
    "oauth2_provider",
    "connections",
    "mcp_gateway",
    # The portal that composes both: the dashboard, the User admin, account commands.
    "attio_portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything that answers: it answers CORS preflights (CORS_URLS_REGEX).
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "attio_portal.urls"
ASGI_APPLICATION = "attio_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project templates come first so the portal's registration/ pages win over
        # the admin's plain ones.
        "DIRS": [BASE_DIR / "attio_portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; wait for the lock instead of failing at once when the
    # web server, worker and beat touch the database together.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses sign-ins from locked-out accounts and addresses.
    "axes.backends.AxesStandaloneBackend",
    "attio_portal.auth.EmailOrUsernameBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Failed sign-ins are throttled per account and, separately, per client address.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# One count per account, whichever spelling of its email or its username is typed.
AXES_USERNAME_CALLABLE = "attio_portal.accounts.sign_in_lockout_key"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Password reset emails asked for per hour, per client address and per email address.
PASSWORD_RESETS_PER_HOUR = env.int("PASSWORD_RESETS_PER_HOUR", default=5)

# Sign-in through the team's OpenID Connect provider (attio_portal/sso.py): on when a
# discovery URL is set.
OIDC_DISCOVERY_URL = env.str("OIDC_DISCOVERY_URL", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="your identity provider")
# Only verified email addresses of these domains may sign in (required with OIDC on: a
# public provider such as Google would otherwise let anyone in).
OIDC_ALLOWED_DOMAINS = [
    d.strip().lower() for d in env.list("OIDC_ALLOWED_DOMAINS", default=[]) if d.strip()
]
# A first sign-in creates the user; inactive until an administrator activates them, unless
# this is on.
OIDC_NEW_USERS_ACTIVE = env.bool("OIDC_NEW_USERS_ACTIVE", default=False)
# Off: only superusers sign in with a password (everyone else through OIDC).
PASSWORD_SIGN_IN = env.bool("PASSWORD_SIGN_IN", default=True)
if OIDC_DISCOVERY_URL and not (OIDC_CLIENT_ID and OIDC_ALLOWED_DOMAINS):
    raise ImproperlyConfigured(
        "OIDC_DISCOVERY_URL is set: also set OIDC_CLIENT_ID (and OIDC_CLIENT_SECRET) and "
        "OIDC_ALLOWED_DOMAINS, the email domains that may sign in."
    )
if [d for d in OIDC_ALLOWED_DOMAINS if "@" in d or "." not in d or " " in d]:
    raise ImproperlyConfigured(
        "OIDC_ALLOWED_DOMAINS holds email domains, comma-separated: example.com,example.org"
    )
_oidc = urlsplit(OIDC_DISCOVERY_URL)
if (
    OIDC_DISCOVERY_URL
    and not DEBUG
    and _oidc.scheme != "https"
    and _oidc.hostname not in ("127.0.0.1", "localhost", "::1")
):
    raise ImproperlyConfigured("OIDC_DISCOVERY_URL must be an https URL.")
if not PASSWORD_SIGN_IN and not OIDC_DISCOVERY_URL:
    raise ImproperlyConfigured(
        "PASSWORD_SIGN_IN=false leaves only superusers able to sign in: set "
        "OIDC_DISCOVERY_URL (and the other OIDC_ settings) too."
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files in production (after collectstatic); plain files
        # straight from the source tree in development.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
# For the file-based backend (django.core.mail.backends.filebased.EmailBackend).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "emails"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Attio Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security headers and cookies. In production the portal sits behind a TLS proxy that
# sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Health checks come from inside the network over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PORTAL_BASE_URL])
X_FRAME_OPTIONS = "DENY"

# Attio OAuth app and API. See README "Registering an Attio app".
ATTIO_CLIENT_ID = env.str("ATTIO_CLIENT_ID", default="")
ATTIO_CLIENT_SECRET = env.str("ATTIO_CLIENT_SECRET", default="")
ATTIO_AUTHORIZE_URL = env.str("ATTIO_AUTHORIZE_URL", default="https://app.attio.com/authorize")
ATTIO_TOKEN_URL = env.str("ATTIO_TOKEN_URL", default="https://app.attio.com/oauth/token")
ATTIO_REVOKE_URL = env.str("ATTIO_REVOKE_URL", default="https://app.attio.com/oauth/revoke")
ATTIO_INTROSPECT_URL = env.str(
    "ATTIO_INTROSPECT_URL", default="https://app.attio.com/oauth/introspect"
)
# How long to wait for Attio before giving up on a call, in seconds.
ATTIO_HTTP_TIMEOUT_SECONDS = env.float("ATTIO_HTTP_TIMEOUT_SECONDS", default=10.0)
# Extra authorize parameters, e.g. ATTIO_AUTHORIZE_EXTRA_PARAMS=token_level=user
ATTIO_AUTHORIZE_EXTRA_PARAMS = env.dict("ATTIO_AUTHORIZE_EXTRA_PARAMS", default={})
# Attio's issuer, compared with an `iss` parameter on the OAuth callback (RFC 9207).
ATTIO_OAUTH_ISSUER = env.str("ATTIO_OAUTH_ISSUER", default="https://app.attio.com")
# Attempts at Attio's revoke endpoint before a pending revocation is given up.
ATTIO_REVOKE_MAX_ATTEMPTS = env.int("ATTIO_REVOKE_MAX_ATTEMPTS", default=8)
# How long a user has to finish Attio's consent page before the flow's state expires.
ATTIO_OAUTH_STATE_MAX_AGE = 600
ATTIO_API_BASE_URL = env.str("ATTIO_API_BASE_URL", default="https://api.attio.com").rstrip("/")

# The MCP gateway at /mcp. Host and Origin headers are checked against these (DNS
# rebinding protection); requests without an Origin header, like most MCP clients', pass.
_portal = urlsplit(PORTAL_BASE_URL)
MCP_ALLOWED_HOSTS = env.list(
    "MCP_ALLOWED_HOSTS",
    default=[_portal.netloc] + [f"{h}:*" for h in ALLOWED_HOSTS] + ALLOWED_HOSTS,
)
MCP_ALLOWED_ORIGINS = env.list(
    "MCP_ALLOWED_ORIGINS", default=[f"{_portal.scheme}://{_portal.netloc}"]
)
# Tool calls allowed per API key per minute (counted in each web worker process).
MCP_RATE_LIMIT_PER_MINUTE = env.int("MCP_RATE_LIMIT_PER_MINUTE", default=300)
# How long the audit trail keeps tool-call rows; 0 keeps them for good. Security events
# (connections, revocations, key and app events) are kept whatever this says.
TOOL_CALL_RETENTION_DAYS = env.int("TOOL_CALL_RETENTION_DAYS", default=180)
# Failed authentications (401) allowed per client address, and per key id, per minute
# before /mcp answers 429 (counted in each web worker process).
MCP_AUTH_FAILURES_PER_MINUTE = env.int("MCP_AUTH_FAILURES_PER_MINUTE", default=30)
# Largest MCP request body accepted, in bytes.
MCP_MAX_REQUEST_BYTES = env.int("MCP_MAX_REQUEST_BYTES", default=1024 * 1024)
# Seconds a client has to send an MCP request's body before /mcp answers 408.
MCP_BODY_TIMEOUT_SECONDS = env.float("MCP_BODY_TIMEOUT_SECONDS", default=30.0)
# How long a preview's fingerprint lets a delete or bulk write go ahead (tools/_confirm.py).
MCP_CONFIRM_SECONDS = env.int("MCP_CONFIRM_SECONDS", default=300)
# How many web worker processes serve /mcp, all machines together: they share the bulk
# tools' pace per workspace (tools/bulk.py). The launcher (attio_portal.serve) sets it from
# its --workers unless it is set.
PORTAL_WORKERS = max(1, env.int("PORTAL_WORKERS", default=1))
# The MCP gateway checks keys and OAuth tokens with prepared statements on its own pool
# (mcp_gateway/postgres_checks.py), which cost PostgreSQL a quarter of the CPU of a check
# planned afresh each time (0.11 against 0.45 ms). Turn it off behind a transaction-mode
# pooler that cannot keep them (PgBouncer before 1.21, or with max_prepared_statements = 0,
# its default before 1.24). Django's own queries never prepare.
MCP_PREPARED_KEY_CHECKS = env.bool("MCP_PREPARED_KEY_CHECKS", default=True)

# The portal is the OAuth 2.1 authorization server of its own MCP endpoint, for clients
# that cannot take a pasted API key (Claude.ai, Claude Desktop, ChatGPT): see
# mcp_gateway/oauth_server.py and docs/oauth.md. Built on django-oauth-toolkit.
# Lifetime of an OAuth access token, in seconds; refresh tokens rotate on every use.
OAUTH_ACCESS_TOKEN_SECONDS = env.int("OAUTH_ACCESS_TOKEN_SECONDS", default=3600)
# Redirect URI schemes accepted besides https and loopback http (native apps).
OAUTH_REDIRECT_SCHEMES = env.list("OAUTH_REDIRECT_SCHEMES", default=["cursor"])
# Hosts whose https redirect URIs dynamic registration accepts; empty: any host.
OAUTH_DCR_REDIRECT_HOSTS = env.list("OAUTH_DCR_REDIRECT_HOSTS", default=[])
# Client registrations allowed per client address per hour (counted in each process).
OAUTH_DCR_PER_HOUR = env.int("OAUTH_DCR_PER_HOUR", default=20)
# Hosts whose client ID metadata documents are fetched (ALLOWED_HOSTS syntax, so
# ".example.com" covers subdomains); empty: any public https host.
OAUTH_CIMD_HOSTS = env.list("OAUTH_CIMD_HOSTS", default=[])
# Development and tests only: fetch the metadata document of a client id
# https://127.0.0.1:<port>/... over plain http from loopback.
OAUTH_CIMD_LOOPBACK_HTTP = env.bool("OAUTH_CIMD_LOOPBACK_HTTP", default=False)
if OAUTH_CIMD_LOOPBACK_HTTP and not DEBUG:
    raise ImproperlyConfigured(
        "OAUTH_CIMD_LOOPBACK_HTTP is for development and tests only; DEBUG is off."
    )

OAUTH_SCOPES = {
    "attio.read": "Read your Attio workspace: records, lists, notes, tasks and members",
    "attio.write": "Change your Attio workspace: create, update and delete",
}
# The toolkit's own models (named here because migrations that refer to them ask).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    "SCOPES": OAUTH_SCOPES,
    "DEFAULT_SCOPES": ["attio.read"],
    "OAUTH2_VALIDATOR_CLASS": "mcp_gateway.oauth_server.PortalOAuth2Validator",
    "ACCESS_TOKEN_GENERATOR": "mcp_gateway.oauth_server.new_access_token",
    "REFRESH_TOKEN_GENERATOR": "mcp_gateway.oauth_server.new_refresh_token",
    "ACCESS_TOKEN_EXPIRE_SECONDS": OAUTH_ACCESS_TOKEN_SECONDS,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # A refresh token unused this long after its access token expired stops working: an
    # app nobody has used for 90 days must be approved again.
    "REFRESH_TOKEN_EXPIRE_SECONDS": 90 * 24 * 3600,
    "PKCE_REQUIRED": True,
    # The issuer, exactly as the metadata and the `iss` on redirects give it.
    "OIDC_ISS_ENDPOINT": PORTAL_BASE_URL,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http", *OAUTH_REDIRECT_SCHEMES],
    # RFC 8252: a loopback redirect URI matches on any port, localhost included.
    "ALLOW_LOCALHOST_LOOPBACK": True,
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    # "none": public clients with PKCE (Claude uses CIMD only when this is listed).
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ],
    "OAUTH2_PROTECTED_RESOURCE_IDENTIFIER": f"{PORTAL_BASE_URL}/mcp",
    "OAUTH2_PROTECTED_RESOURCE_AUTHORIZATION_SERVERS": [PORTAL_BASE_URL],
    "OAUTH2_PROTECTED_RESOURCE_NAME": "Attio (via Attio Portal)",
    "OAUTH2_PROTECTED_RESOURCE_DOCUMENTATION": f"{PORTAL_BASE_URL}/",
    "DCR_ENABLED": True,
    # Anyone may register (MCP clients do before a user signs in); RegisterView limits
    # registrations per address.
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    "CIMD_ENABLED": True,
    "CIMD_ALLOWED_HOSTS": OAUTH_CIMD_HOSTS,
    "CIMD_REGISTRATION_PERMISSION_CLASSES": (
        ("oauth2_provider.cimd.HostAllowlistCIMDPermission",)
        if OAUTH_CIMD_HOSTS
        else ("oauth2_provider.cimd.AllowAllCIMDPermission",)
    ),
    "CIMD_METADATA_FETCHER": (
        "mcp_gateway.oauth_server.LoopbackHttpMetadataFetcher"
        if OAUTH_CIMD_LOOPBACK_HTTP
        else "oauth2_provider.cimd.SafeMetadataFetcher"
    ),
    # RFC 9700 (OAuth security best current practice); `check --deploy` checks these.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    # Tokens at rest as SHA-256 checksums only: the database can't give one back.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
# oauth2_provider.W008 flags "http" among the redirect URI schemes. It is there for
# loopback redirect URIs only (RFC 8252: VS Code, Claude Code, the MCP Inspector):
# mcp_gateway.oauth_server refuses http for any other host, at registration and on
# authorize (tests/mcp_gateway/test_oauth_server.py).
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.W008"]

# CORS, for browser-based MCP clients: the OAuth metadata, token, registration and
# revocation endpoints answer any origin. Nothing there reads cookies.
CORS_URLS_REGEX = r"^/(\.well-known/oauth-.*|oauth/(token|register|revoke)/.*)$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False

# Celery. With no CELERY_BROKER_URL the embedded filesystem broker under var/ is
# used, so development needs no server; production sets redis://.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_BROKER_FOLDER = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER),
        "data_folder_out": str(CELERY_BROKER_FOLDER),
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
# The queue tasks go to; separate names let several portals share one Redis.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# A task that dies with its worker goes back on the queue instead of being lost.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Where beat remembers when each periodic task last ran.
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule")
)


def _make_folders_for_local_state() -> None:
    """Create the folders the local files above live in (var/ in a fresh clone)."""
    folders = [Path(CELERY_BEAT_SCHEDULE_FILENAME).parent]
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        name = str(DATABASES["default"]["NAME"])
        if name and name != ":memory:" and not name.startswith("file:"):
            folders.append(Path(name).parent)
    folders += [Path(v) for k, v in CELERY_BROKER_TRANSPORT_OPTIONS.items() if "folder" in k]
    if EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        folders.append(Path(EMAIL_FILE_PATH))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


_make_folders_for_local_state()

# Keeping connections fresh (see connections/freshness.py ensure_fresh).
# Refresh a token this long before it expires.
CONNECTION_REFRESH_MARGIN = timedelta(
    seconds=env.int("CONNECTION_REFRESH_MARGIN_SECONDS", default=600)
)
# Ask Attio whether a non-expiring token still works this often.
CONNECTION_VALIDATE_INTERVAL = timedelta(
    seconds=env.int("CONNECTION_VALIDATE_INTERVAL_SECONDS", default=3600)
)
# Lifetime assumed when a refresh answer has no expires_in: never "fresh forever".
CONNECTION_DEFAULT_TOKEN_LIFETIME = timedelta(
    seconds=env.int("CONNECTION_DEFAULT_TOKEN_LIFETIME_SECONDS", default=3600)
)
# How often beat looks for due connections.
CONNECTION_SWEEP_INTERVAL = env.int("CONNECTION_SWEEP_INTERVAL_SECONDS", default=60)
# A sweep's claim on a connection lapses after this, in case its task was lost (a killed
# worker); keep it well inside the refresh margin. A duplicate task does no harm.
CONNECTION_SWEEP_CLAIM_TTL = timedelta(
    seconds=env.int("CONNECTION_SWEEP_CLAIM_TTL_SECONDS", default=300)
)
# Retries of a transient failure (timeouts, 5xx, 429) before waiting for the next sweep.
CONNECTION_REFRESH_MAX_RETRIES = env.int("CONNECTION_REFRESH_MAX_RETRIES", default=5)
# The sweep's share of Attio's per-workspace budget (100 reads/s, 25 writes/s), leaving
# the rest to users' own traffic through the gateway. Token refreshes count as writes.
SWEEP_READS_PER_SECOND = env.float("SWEEP_READS_PER_SECOND", default=50)
SWEEP_WRITES_PER_SECOND = env.float("SWEEP_WRITES_PER_SECOND", default=10)
# Attio calls in flight at once in each sweep task (and in `manage.py sweep_connections`).
CONNECTION_SWEEP_CONCURRENCY = env.int("CONNECTION_SWEEP_CONCURRENCY", default=16)

CELERY_BEAT_SCHEDULE = {
    # Refresh expiring tokens and validate the rest; due connections are fanned out in
    # batches. Every minute keeps well inside the 10-minute refresh margin.
    "sweep-connections": {
        "task": "connections.tasks.sweep_connections",
        "schedule": CONNECTION_SWEEP_INTERVAL,
    },
    # Expired OAuth tokens and codes, and the connected apps they leave unusable.
    "clear-expired-oauth-rows": {
        "task": "mcp_gateway.tasks.clear_expired_oauth_rows",
        "schedule": timedelta(days=1),
    },
    # The days that are over, summed for the usage page (mcp_gateway/usage.py).
    "roll-up-usage": {
        "task": "mcp_gateway.tasks.roll_up_usage",
        "schedule": timedelta(hours=1),
    },
    # Tool-call rows older than TOOL_CALL_RETENTION_DAYS.
    "delete-old-tool-calls": {
        "task": "mcp_gateway.tasks.delete_old_tool_calls",
        "schedule": timedelta(hours=1),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "strip_query_strings": {"()": "attio_portal.logging.StripQueryStrings"},
        "skip_client_errors": {"()": "attio_portal.logging.SkipClientErrors"},
        "skip_beat_sending": {"()": "attio_portal.logging.SkipBeatSending"},
        "skip_pool_sigterm_exits": {"()": "attio_portal.logging.SkipPoolSigtermExits"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["skip_client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # HTTP and OAuth libraries have logged request headers and fresh tokens at
        # DEBUG before; keep them quiet whatever LOG_LEVEL says.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        # The gateway's calls to Attio go through aiohttp (connections.attio.gateway_transport).
        "aiohttp": {"level": "WARNING"},
        "authlib": {"level": "WARNING"},
        # requests (authlib's Django client, single sign-on) logs through urllib3.
        "urllib3": {"level": "WARNING"},
        # The authorization server: oauthlib and django-oauth-toolkit log authorization
        # codes, refresh tokens and success URLs (with their code) at DEBUG and INFO.
        "oauthlib": {"level": "WARNING"},
        "oauth2_provider": {"level": "WARNING"},
        # The MCP SDK's transport says "Terminating session: None" at INFO at the end of
        # every stateless /mcp request: a line per tool call, and its cost, for nothing.
        "mcp.server.streamable_http": {"level": "WARNING"},
        # uvicorn's access log, without query strings (the OAuth callback's carries a
        # code). Replaces uvicorn's own handler; records go to the console above.
        "uvicorn.access": {"filters": ["strip_query_strings"], "propagate": True},
        # Django's default logging gives "django" a console handler of its own, so in
        # development each of its records (a 404's "Not Found") was printed twice. No
        # handler here: records reach the console above once, through the root. (Its
        # mail_admins handler goes too; ADMINS is not set.)
        "django": {"handlers": [], "level": "INFO"},
        # django-axes logs four lines for a successful sign-in; failed sign-ins and
        # lockouts are warnings, logged once each.
        "axes": {"level": "WARNING"},
        # Celery's lines for every routine task: beat sending it, the worker receiving
        # it and finishing it, three a minute for the sweep even when nothing is due.
        # The portal's tasks log the work they do; failed tasks are still logged, as
        # errors.
        "celery.beat": {"filters": ["skip_beat_sending"]},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        # The worker's pool supervisor (billiard logs as "multiprocessing"): an ERROR for
        # each pool process on Ctrl-C; see SkipPoolSigtermExits.
        "multiprocessing": {"filters": ["skip_pool_sigterm_exits"]},
    },
}

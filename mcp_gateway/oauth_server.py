"""The portal as the OAuth 2.1 authorization server of its own MCP endpoint.

django-oauth-toolkit (`oauth2_provider`) does the protocol: RFC 8414 and RFC 9728
metadata, dynamic client registration (RFC 7591/7592), client ID metadata documents,
PKCE, RFC 8707 resources, RFC 9207 `iss`, hashed tokens, refresh token rotation with
reuse detection. What is here is the glue to the portal:

- the consent step names the Attio connection a client may act on and whether it may
  write, and keeps that as a ConnectedApp (`PortalOAuth2Validator`, `AuthorizeView`);
- tokens are for this portal's /mcp only (any other `resource` is `invalid_target`);
- a replayed authorization code revokes what it authorized;
- redirect URIs: https, loopback http on any port (RFC 8252), and the custom schemes of
  OAUTH_REDIRECT_SCHEMES; registrations are limited per address.

docs/oauth.md has the whole picture; the resource side (checking a token on /mcp) is in
auth.py, next to API keys.
"""

import hashlib
import ipaddress
import json
import logging
import re
from urllib.parse import urlsplit

import urllib3
from django import forms
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider import cimd, views
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import Application
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from connections.models import Connection
from connections.services import client_ip

from .forms import ACCESS_CHOICES, ToolProfileField
from .models import ConnectedApp, ToolProfile, random_base62

logger = logging.getLogger(__name__)

READ = "attio.read"
WRITE = "attio.write"
# What a 401 or a 403 tells a client to ask for: the user picks read-only or
# read-write on the consent page, whatever was asked.
ALL_SCOPES = f"{READ} {WRITE}"

# Recognisable tokens (secret scanners, logs reviewed by people): 43 base62 characters
# carry 256 bits.
ACCESS_TOKEN_PREFIX = "atpo_at_"
REFRESH_TOKEN_PREFIX = "atpo_rt_"
ACCESS_TOKEN_LENGTH = len(ACCESS_TOKEN_PREFIX) + 43


def new_access_token(request) -> str:
    return ACCESS_TOKEN_PREFIX + random_base62(43)


def new_refresh_token(request) -> str:
    return REFRESH_TOKEN_PREFIX + random_base62(43)


def looks_like_access_token(presented: str) -> bool:
    return len(presented) == ACCESS_TOKEN_LENGTH and presented.startswith(ACCESS_TOKEN_PREFIX)


def token_checksum(token: str) -> str:
    """How django-oauth-toolkit finds a token (and a code, here) without storing it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mcp_url() -> str:
    return f"{settings.PORTAL_BASE_URL}/mcp"


def is_this_resource(uri: str) -> bool:
    return uri.rstrip("/") == mcp_url()


# --- Redirect URIs ----------------------------------------------------------------------

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def redirect_uri_problem(uri: str, *, registering: bool = False) -> str | None:
    """Why `uri` can't be a redirect URI here, or None if it can.

    https for any host (or, when registering dynamically, the hosts of
    OAUTH_DCR_REDIRECT_HOSTS); plain http only to loopback, where the port may be any
    (RFC 8252); custom schemes only those of OAUTH_REDIRECT_SCHEMES (Cursor's cursor://).
    """
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return f"{uri!r} is not a URL"
    if parts.fragment or "#" in uri:
        return f"{uri!r} has a fragment"
    if any(c.isspace() for c in uri):
        # The toolkit keeps redirect URIs space-separated: one with a space would be two.
        return f"{uri!r} contains whitespace"
    if parts.username or parts.password:
        return f"{uri!r} carries credentials"
    if parts.scheme == "https":
        if not host:
            return f"{uri!r} has no host"
        allowed = settings.OAUTH_DCR_REDIRECT_HOSTS
        if registering and allowed and host not in allowed and host not in LOOPBACK_HOSTS:
            return f"{uri!r}: this portal accepts redirect URIs on {', '.join(allowed)} only"
        return None
    if parts.scheme == "http":
        if host in LOOPBACK_HOSTS:
            return None
        return f"{uri!r}: plain http is accepted for loopback addresses only"
    if parts.scheme and parts.scheme in settings.OAUTH_REDIRECT_SCHEMES:
        return None
    return f"{uri!r}: the scheme {parts.scheme!r} is not accepted (OAUTH_REDIRECT_SCHEMES)"


# --- The validator: where consent becomes a ConnectedApp ----------------------------------

# The consent form's choice of connection, as AuthorizeView hands it to the validator.
CONSENTED_CONNECTION = "_portal_consented_connection"
# And its choice of tool profile: the user's choice, not a scope the client could ask for.
CONSENTED_TOOL_PROFILE = "_portal_consented_tool_profile"


class PortalOAuth2Validator(OAuth2Validator):
    """django-oauth-toolkit's validator, plus the portal's rules (see the module)."""

    def _create_authorization_code(self, request, code, expires=None):
        # Set by AuthorizeView from the consent form. Read from the request's own
        # attributes: oauthlib's Request answers any other name from the query string.
        connection_id = vars(request).get(CONSENTED_CONNECTION)
        consented = Connection.objects.active().filter(pk=connection_id, owner=request.user)
        if connection_id is None or not consented.exists():
            # Only the portal's consent form picks a connection; nothing else may
            # authorize (an Application marked skip_authorization, approval_prompt=auto).
            raise errors.AccessDeniedError(
                description="Approve the request on the portal's consent page.", request=request
            )
        # The consent form's hidden fields come back from the browser: checked again.
        problem = pkce_problem(request.code_challenge, request.code_challenge_method)
        if problem is not None:
            raise errors.InvalidRequestError(description=problem, request=request)
        refuse_other_resources(request, getattr(request, "resource", None) or [])
        # OpenID Connect's, which this server doesn't speak: not kept (the toolkit would
        # store them, and fail on a nonce longer than its column).
        request.nonce = None
        request.claims = None
        # Bound to this portal's /mcp whether the client named it or not (RFC 8707).
        request.resource = [mcp_url()]
        grant = super()._create_authorization_code(request, code, expires)
        ConnectedApp.objects.create(
            user=request.user,
            client=request.client,
            connection_id=connection_id,
            read_only=WRITE not in request.scopes,
            tool_profile=vars(request).get(CONSENTED_TOOL_PROFILE) or ToolProfile.FULL,
            code_checksum=token_checksum(code["code"]),
        )
        return grant

    def _validate_resource_uris(self, request, resources):
        super()._validate_resource_uris(request, resources)
        refuse_other_resources(request, resources)

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        if super().validate_code(client_id, code, client, request, *args, **kwargs):
            return True
        # A code already exchanged, presented again: whoever holds it may have stolen
        # it, so what it authorized is revoked (RFC 9700 4.2.1).
        replayed = ConnectedApp.objects.live().filter(code_checksum=token_checksum(code)).first()
        if replayed is not None:
            logger.warning(
                "An authorization code was used twice; revoking connected app %s", replayed.pk
            )
            from .services import revoke_connected_app

            revoke_connected_app(replayed, by=None, reason="authorization code used twice")
        return False

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous):
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous
        )
        if previous is None:
            # The code's exchange: the app its consent made now has its token family.
            updated = ConnectedApp.objects.filter(
                code_checksum=token_checksum(request.code),
                token_family__isnull=True,
                revoked_at__isnull=True,
            ).update(token_family=refresh_token.token_family)
            if not updated:
                raise errors.InvalidGrantError(request=request)
            from .services import record_app_authorized

            record_app_authorized(ConnectedApp.objects.get(token_family=refresh_token.token_family))
        return refresh_token

    def _save_bearer_token(self, token, request, *args, **kwargs):
        if request.grant_type == "refresh_token":
            # Two refreshes of one token at once both pass validation; the second waits
            # here for the first's rotation and is refused, rather than reach the
            # toolkit's grace-period answer, which needs the plaintext tokens this server
            # doesn't keep (a 500). Inside save_bearer_token's transaction.
            from oauth2_provider.models import get_refresh_token_model

            still_live = (
                get_refresh_token_model()
                .objects.select_for_update()
                .filter(pk=request.refresh_token_instance.pk, revoked__isnull=True)
            )
            if not still_live.exists():
                raise errors.InvalidGrantError(request=request)
        return super()._save_bearer_token(token, request, *args, **kwargs)

    def _load_application(self, client_id, request):
        # A client id that is a metadata document URL is fetched only on the authorize
        # page, which a user reaches signed in: anyone may POST to the token and revoke
        # endpoints, and each unknown URL there would be a fetch and a new client row.
        elsewhere = urlsplit(request.uri).path != reverse("oauth2_provider:authorize")
        if (
            elsewhere
            and cimd.is_cimd_client_id(client_id)
            and not Application.objects.filter(client_id=client_id).exists()
        ):
            return None
        return super()._load_application(client_id, request)

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            self.revoke_app_of_reused(refresh_token)
            return False
        family = request.refresh_token_instance.token_family
        return ConnectedApp.objects.live().filter(token_family=family).exists()

    @staticmethod
    def revoke_app_of_reused(refresh_token: str) -> None:
        """A refresh token presented after it was rotated away (or revoked): the toolkit
        has just revoked its whole family (REFRESH_TOKEN_REUSE_PROTECTION, RFC 9700
        4.14.2). The app those tokens were for goes with them, so the user's dashboard
        shows it revoked rather than connected with tokens that all fail."""
        from oauth2_provider.models import get_refresh_token_model

        reused = get_refresh_token_model().objects.filter(
            token_checksum=token_checksum(refresh_token), revoked__isnull=False
        )
        families = reused.values("token_family")
        app = ConnectedApp.objects.live().filter(token_family__in=families).first()
        if app is not None:
            logger.warning("A refresh token was used twice; revoking connected app %s", app.pk)
            from .services import revoke_connected_app

            revoke_connected_app(app, by=None, reason="refresh token used twice")

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        """RFC 7009 revocation by the client itself (a user signing out of a connector):
        its tokens go, and so does the connected app, rather than stay listed with none."""
        from oauth2_provider.models import get_access_token_model, get_refresh_token_model

        checksum = token_checksum(token)
        client_pk = getattr(request.client, "pk", None)
        families = list(
            get_refresh_token_model()
            .objects.filter(application_id=client_pk, token_checksum=checksum)
            .values_list("token_family", flat=True)
        ) + list(
            get_access_token_model()
            .objects.filter(application_id=client_pk, token_checksum=checksum)
            .values_list("refresh_token__token_family", flat=True)
        )
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        from .services import revoke_connected_app

        for app in ConnectedApp.objects.live().filter(token_family__in=[f for f in families if f]):
            revoke_connected_app(app, by=None, reason="revoked by the app")


S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def pkce_problem(challenge: str | None, method: str | None) -> str | None:
    """Why a PKCE challenge is refused, or None: S256 only (RFC 9700 2.1.1), and then
    the challenge is a SHA-256 in base64url, 43 characters (RFC 7636 4.2)."""
    if not challenge:
        return "Code challenge required."
    if (method or "plain") != "S256":
        return 'PKCE with code_challenge_method "S256" is required.'
    if not S256_CHALLENGE.fullmatch(challenge):
        return "The code_challenge is not an S256 challenge (43 base64url characters)."
    return None


def refuse_other_resources(request, resources) -> None:
    """invalid_target for any resource but this portal's /mcp (RFC 8707)."""
    for resource in resources:
        if not is_this_resource(resource):
            raise errors.CustomOAuth2Error(
                error="invalid_target",
                description=f"This server issues tokens for {mcp_url()} only.",
                request=request,
            )


# --- The consent page ---------------------------------------------------------------------


class ConsentForm(AllowForm):
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        label="Attio workspace",
        empty_label=None,
        required=False,
    )
    access = forms.ChoiceField(
        choices=ACCESS_CHOICES,
        widget=forms.RadioSelect,
        initial="read_only",  # least privilege: writing is something the user asks for
        required=False,
    )
    tool_profile = ToolProfileField()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        connections = user.attio_connections.active().order_by("workspace_name")
        self.fields["connection"].queryset = connections
        self.fields["connection"].label_from_instance = lambda c: c.workspace_name

    def clean(self):
        data = super().clean()
        if data.get("allow"):
            if data.get("connection") is None:
                self.add_error("connection", "Choose the Attio workspace the app may use.")
            if data.get("access") not in ("read_only", "read_write"):
                self.add_error("access", "Choose read only or read and write.")
        return data

    @property
    def scopes(self) -> str:
        return READ if self.cleaned_data.get("access") != "read_write" else ALL_SCOPES


class AuthorizeView(views.AuthorizationView):
    """The authorize endpoint: sign-in (the portal's own, with its throttling), then
    consent on the portal's page, which picks the workspace, read-only or read-write,
    and the tool profile. Refuses up front what would only fail after consent."""

    template_name = "mcp_gateway/oauth_consent.html"
    form_class = ConsentForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get(self, request, *args, **kwargs):
        # Consent is asked every time: the choice of workspace is part of it.
        if "approval_prompt" in request.GET:
            request.GET = request.GET.copy()
            del request.GET["approval_prompt"]
        try:
            _, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        problem = redirect_uri_problem(credentials["redirect_uri"])
        if problem is not None:
            return self.error_page(problem)  # never redirect to it
        refusal = self.refusal_before_consent(request, credentials)
        if refusal is not None:
            return self.error_response(refusal, application=None)
        return super().get(request, *args, **kwargs)

    @staticmethod
    def refusal_before_consent(request, credentials) -> OAuthToolkitError | None:
        """PKCE other than S256 (or a challenge no S256 verifier can match), or a resource
        other than /mcp: refused on the way in."""
        redirect_uri, state = credentials["redirect_uri"], credentials.get("state")
        problem = pkce_problem(
            credentials.get("code_challenge"), credentials.get("code_challenge_method")
        )
        if problem is not None:
            error = errors.InvalidRequestError(description=problem, state=state)
        elif any(not is_this_resource(r) for r in request.GET.getlist("resource")):
            error = errors.CustomOAuth2Error(
                error="invalid_target",
                description=f"This server issues tokens for {mcp_url()} only.",
                state=state,
            )
        else:
            return None
        error.redirect_uri = redirect_uri
        return OAuthToolkitError(error=error, redirect_uri=redirect_uri)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        application = context.get("application")
        if application is not None:
            user = self.request.user
            context["verified_by_cimd"] = application.registration_source == "cimd"
            context["added_by_admin"] = application.registration_source == "manual"
            context["client_host"] = (
                urlsplit(application.client_id).hostname if context["verified_by_cimd"] else None
            )
            context["redirect_host"] = urlsplit(context.get("redirect_uri") or "").hostname
            context["has_connection"] = user.attio_connections.active().exists()
            context["needs_reconnect"] = list(
                user.attio_connections.filter(status=Connection.Status.NEEDS_RECONNECT)
            )
            context["oauth_configured"] = bool(settings.ATTIO_CLIENT_ID)
            if not context["has_connection"] and self.request.method == "GET":
                # "Connect Attio first" comes back here (connections' after-connect);
                # only then, so a later connect from the dashboard stays there.
                self.request.session["after_connect"] = self.request.get_full_path()
        return context

    def form_invalid(self, form):
        # The page again, with what to fix (the toolkit's own would lack the client).
        application = Application.objects.filter(client_id=form.data.get("client_id")).first()
        if application is None:
            return self.error_page("Invalid client_id parameter value.")
        context = self.get_context_data(
            form=form, application=application, redirect_uri=form.data.get("redirect_uri")
        )
        return self.render_to_response(context, status=400)

    def form_valid(self, form):
        # The hidden fields come back from the browser: a client or redirect URI that
        # isn't registered gets the error page, approve or deny (the toolkit would
        # redirect a denial to whatever URI was posted, and fail on an unknown client).
        client_id, redirect_uri = form.cleaned_data["client_id"], form.cleaned_data["redirect_uri"]
        application = Application.objects.filter(client_id=client_id).first()
        if application is None:
            return self.error_page("Invalid client_id parameter value.")
        if not application.redirect_uri_allowed(redirect_uri) or redirect_uri_problem(redirect_uri):
            return self.error_page("Mismatching redirect URI.")
        self.consent = form
        form.cleaned_data["scope"] = form.scopes
        return super().form_valid(form)

    def error_page(self, description: str):
        """The error page (400) for a request that must not go back to its client."""
        error = {"error": "invalid_request", "description": description}
        return self.render_to_response({"error": error}, status=400)

    def redirect(self, redirect_to, application):
        # The toolkit adds `iss` to a successful answer only; RFC 9207 wants it on
        # every authorization response, errors (access_denied) included.
        return super().redirect(
            _add_iss_to_redirect(redirect_to, settings.PORTAL_BASE_URL), application
        )

    def create_authorization_response(self, request, scopes, credentials, allow):
        consent = getattr(self, "consent", None)
        if allow and consent is not None:
            credentials = {
                **credentials,
                CONSENTED_CONNECTION: consent.cleaned_data["connection"].pk,
                CONSENTED_TOOL_PROFILE: consent.cleaned_data["tool_profile"],
            }
        response = super().create_authorization_response(request, scopes, credentials, allow)
        request.session.pop("after_connect", None)
        return response


# --- The token endpoint -------------------------------------------------------------------


@method_decorator(
    sensitive_post_parameters(
        "code", "code_verifier", "refresh_token", "token", "client_secret", "password"
    ),
    name="dispatch",
)
class TokenView(views.TokenView):
    """The toolkit's token endpoint, every answer JSON and never cached (RFC 6749 5.1,
    5.2). An error raised while tokens are saved (invalid_target, a code whose app was
    revoked meanwhile) comes back from oauthlib without its headers otherwise, as
    text/html."""

    def post(self, request, *args, **kwargs):
        grant_type = request.POST.get("grant_type")
        if grant_type and grant_type not in oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED:
            # Refused here, not by oauthlib: its device flow, which this portal doesn't
            # offer, fails with a 500 on a device code it doesn't know.
            response = JsonResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "This server issues tokens for authorization codes "
                    "and refresh tokens only.",
                },
                status=400,
            )
        else:
            response = super().post(request, *args, **kwargs)
        response["Content-Type"] = "application/json"
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


# --- Dynamic client registration ----------------------------------------------------------


class RegisterView(views.DynamicClientRegistrationView):
    """RFC 7591 registration, open to anyone (MCP clients register before any user signs
    in), limited per client address, with the portal's redirect URI rules."""

    def post(self, request, *args, **kwargs):
        bucket = f"oauth-dcr:{client_ip(request)}"
        cache.add(bucket, 0, timeout=3600)
        try:
            registrations = cache.incr(bucket)
        except ValueError:  # evicted between the two calls: counting starts again
            cache.add(bucket, 1, timeout=3600)
            registrations = 1
        if registrations > settings.OAUTH_DCR_PER_HOUR:
            return JsonResponse(
                {
                    "error": "too_many_requests",
                    "error_description": "Too many client registrations from this address; "
                    "try again in an hour.",
                },
                status=429,
                headers={"Retry-After": "3600"},
            )
        return registration_refused(request.body) or super().post(request, *args, **kwargs)


class RegistrationView(views.DynamicClientRegistrationManagementView):
    """RFC 7592: a client reads, changes or deletes its own registration. A change keeps
    to the rules of a registration (the toolkit's own would take any redirect URI)."""

    def put(self, request, client_id: str, *args, **kwargs):
        registration = self._authenticate_registration_request(request, client_id)
        if isinstance(registration, HttpResponse):
            return registration  # who may change it comes before what it may say
        return registration_refused(request.body) or super().put(
            request, client_id, *args, **kwargs
        )

    def delete(self, request, client_id: str, *args, **kwargs):
        # As the toolkit's, but through the service, so the apps it ends are on record.
        registration = self._authenticate_registration_request(request, client_id)
        if isinstance(registration, HttpResponse):
            return registration
        from .services import remove_client

        remove_client(registration.application, by=None, ip=client_ip(request))
        return HttpResponse(status=204)


def registration_refused(body: bytes) -> JsonResponse | None:
    """The 400 for what the portal refuses in client metadata the toolkit would take:
    redirect URIs outside its rules, a client name that is no string (the toolkit would
    keep its repr as the name users see). None if the portal has nothing to add."""
    try:
        metadata = json.loads(body)
    except ValueError:
        return None  # the toolkit's own answer says what is wrong with the body
    if not isinstance(metadata, dict):
        return None
    error = None
    if not isinstance(metadata.get("client_name", ""), str):
        error, description = "invalid_client_metadata", "client_name must be a string"
    uris = metadata.get("redirect_uris")
    for uri in uris if isinstance(uris, list) else []:
        if isinstance(uri, str) and (problem := redirect_uri_problem(uri, registering=True)):
            error, description = "invalid_redirect_uri", problem
            break
    if error is None:
        return None
    return JsonResponse({"error": error, "error_description": description}, status=400)


# --- Client ID metadata documents in development ------------------------------------------


class LoopbackHttpMetadataFetcher(cimd.SafeMetadataFetcher):
    """OAUTH_CIMD_LOOPBACK_HTTP (development and tests only): a client id
    https://127.0.0.1:<port>/... has its document fetched over plain http from loopback.
    Every other client id goes through the toolkit's hardened fetch; every document
    still passes the same checks (status, media type, size, client_id)."""

    def fetch(self, client_id):
        parsed = cimd._validate_client_id_url(client_id)
        if not is_loopback(parsed.hostname):
            return super().fetch(client_id)
        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS
        pool = urllib3.HTTPConnectionPool(
            host=parsed.hostname,
            port=parsed.port or 443,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
            maxsize=1,
        )
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        try:
            response = pool.urlopen(
                "GET",
                path,
                headers={"Host": parsed.netloc, "Accept": "application/json"},
                redirect=False,
                preload_content=False,
            )
            try:
                return self._read_document(response)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as e:
            raise cimd.CIMDError(f"could not fetch client_id document: {e}") from e
        finally:
            pool.close()


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False

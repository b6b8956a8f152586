"""The portal's own pages: the dashboard, where both apps meet, and the health check."""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import render, resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from requests import RequestException

from connections.models import Connection
from connections.services import client_ip
from mcp_gateway import usage as gateway_usage
from mcp_gateway.models import ToolPolicy

from . import accounts, exports, health, sso
from .forms import DayRangeForm, ResetForm, SignInForm

log = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    checks = {"database": health.check_database(), "broker": health.check_broker()}
    healthy = all(checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


@login_required
def dashboard(request):
    mine = request.user.attio_connections
    connections = list(mine.live().order_by("workspace_name"))
    live_workspaces = {c.workspace_id for c in connections}
    # Connections an admin revoked stay in view until reconnected, so the owner learns
    # why their assistant stopped and how to restore it.
    revoked = [
        c
        for c in mine.restorable().order_by("-revoked_at")
        if c.workspace_id not in live_workspaces
    ]
    return render(
        request,
        "portal/dashboard.html",
        {
            "connections": connections + revoked,
            "needs_reconnect": [
                c for c in connections if c.status == Connection.Status.NEEDS_RECONNECT
            ],
            "revoked": revoked,
            "oauth_configured": bool(settings.ATTIO_CLIENT_ID),
            "api_keys": request.user.api_keys.filter(revoked_at__isnull=True)
            .select_related("connection", "replaced_by")
            .order_by("-created_at"),
            "connected_apps": request.user.connected_apps.live()
            .select_related("client", "connection")
            .order_by("-created_at"),
            "mcp_url": f"{settings.PORTAL_BASE_URL}/mcp",
            "usage": own_usage(request.user),
            "tool_access": ToolPolicy.objects.access_of(request.user.pk),
        },
    )


def own_usage(user):
    """A user's tool calls of the last 30 days (theirs only), for the dashboard."""
    today = timezone.now().date()
    return gateway_usage.usage(today - timedelta(days=29), today, owner=user)


def _count_this_hour(bucket: str) -> int:
    """Add one to an hourly counter in the cache and return it (the DCR throttle's way)."""
    cache.add(bucket, 0, timeout=3600)
    try:
        return cache.incr(bucket)
    except ValueError:  # evicted between the two calls: counting starts again
        cache.add(bucket, 1, timeout=3600)
        return 1


class SignInView(auth_views.LoginView):
    """Django's sign-in page, with the identity provider's button when one is set up."""

    authentication_form = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            sso_enabled=sso.enabled(),
            provider_name=settings.OIDC_PROVIDER_NAME,
            password_sign_in=settings.PASSWORD_SIGN_IN,
            **kwargs,
        )


class PasswordResetView(auth_views.PasswordResetView):
    form_class = ResetForm

    """Django's reset request, limited per client address and per email address, so the
    form cannot be used to flood an inbox or to send mail in bulk. Past the limit the
    answer is the same "if an account exists, we sent an email" page, and no mail goes."""

    def form_valid(self, form):
        # Hashed: a cache key stays short and the cache holds no addresses.
        email = hashlib.sha256(form.cleaned_data["email"].strip().lower().encode()).hexdigest()
        counts = [
            _count_this_hour(f"password-reset:ip:{client_ip(self.request)}"),
            _count_this_hour(f"password-reset:email:{email}"),
        ]
        if max(counts) > settings.PASSWORD_RESETS_PER_HOUR:
            log.warning("Password reset request throttled (address %s)", client_ip(self.request))
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


@never_cache
@require_GET
def sso_start(request):
    """Send the browser to the identity provider, remembering where to go afterwards."""
    if not sso.enabled():
        raise Http404("Single sign-on is not configured")
    request.session.pop("sso_next", None)  # an earlier sign-in's, never finished
    next_url = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        request.session["sso_next"] = next_url
    try:
        return sso.provider().authorize_redirect(request, sso.callback_url())
    except (RequestException, ValueError):
        # Its discovery document could not be read.
        return sso_failed(
            request, f"{settings.OIDC_PROVIDER_NAME} could not be reached. Try again later."
        )


@never_cache
@require_GET
def sso_callback(request):
    """Where the provider sends the browser back: check everything, then sign in."""
    if not sso.enabled():
        raise Http404("Single sign-on is not configured")
    try:
        user = accounts.user_for_sign_in(sso.verified_claims(request))
    except sso.SignInRefused as refused:
        log.warning("Single sign-on refused: %r", str(refused))
        return sso_failed(request, str(refused))
    if not user.is_active:
        waits = user.last_login is None
        return sso_failed(
            request,
            f"Your portal account ({user.email}) "
            + ("waits for an administrator to activate it." if waits else "is not active.")
            + " Ask your portal administrator, then sign in again.",
            status=403,
        )
    login(request, user, backend="attio_portal.auth.EmailOrUsernameBackend")
    next_url = request.session.pop("sso_next", "")
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


def sso_failed(request, message: str, *, status: int = 400):
    return render(
        request,
        "registration/sso_failed.html",
        {"message": message, "provider_name": settings.OIDC_PROVIDER_NAME},
        status=status,
    )


def usage(request):
    """Admin: who used what, how often and how fast, for a range of days."""
    if not request.user.has_perm("mcp_gateway.view_toolcall"):
        raise PermissionDenied
    form = DayRangeForm(request.GET or None)
    start, end = form.days()
    found = gateway_usage.usage(start, end)
    return render(
        request,
        "admin/usage.html",
        {
            **admin.site.each_context(request),
            "title": "Usage",
            "form": form,
            "usage": found,
            "chart_data": found.chart_data(),
            "breakdowns": [
                ("By user", found.by_user),
                ("By tool", found.by_tool),
                ("By workspace", found.by_workspace),
            ],
            "range_query": f"start={start.isoformat()}&end={end.isoformat()}",
        },
    )


def tool_calls_csv(request):
    if not request.user.has_perm("mcp_gateway.view_toolcall"):
        raise PermissionDenied
    start, end = DayRangeForm(request.GET or None).days()
    rows = exports.tool_call_rows(start, end)
    return csv_download(
        exports.rows_as_csv(exports.TOOL_CALL_COLUMNS, rows), "tool-calls", start, end
    )


def audit_log_csv(request):
    if not (
        request.user.has_perm("connections.view_auditevent")
        and request.user.has_perm("mcp_gateway.view_apikeyevent")
    ):
        raise PermissionDenied
    start, end = DayRangeForm(request.GET or None).days()
    lines = exports.rows_as_csv(exports.AUDIT_COLUMNS, exports.audit_rows(start, end))
    return csv_download(lines, "audit-log", start, end)


def csv_download(lines, name: str, start, end) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        exports.streamed(lines), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}-{start}-to-{end}.csv"'
    return response

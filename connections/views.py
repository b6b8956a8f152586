"""Portal pages for a user's Attio connections."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from . import freshness, services
from .connect import ConnectError, connect_with_api_key, finish_oauth, start_oauth
from .forms import AttioApiKeyForm
from .models import Connection


def own_connection(request, pk: int, *, restorable: bool = False) -> Connection:
    queryset = Connection.objects.reconnectable() if restorable else Connection.objects.live()
    connection = get_object_or_404(queryset, pk=pk)
    if connection.owner_id != request.user.pk:
        raise PermissionDenied("Only an admin can act on another user's connection.")
    return connection


def no_referrer(response):
    # The callback URL carried an authorization code: keep it out of caches and out
    # of the Referer of whatever the next page loads.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def after_connect(request) -> str:
    """Where a finished connect goes: back to the page that sent the user to connect (a
    consent page stores its own path in the session), else the dashboard."""
    back = request.session.pop("after_connect", None)
    if back and back.startswith("/") and url_has_allowed_host_and_scheme(back, None):
        return back  # a path on this site only: no host, no scheme
    return reverse("dashboard")


@login_required
@require_POST
def connect(request):
    if not settings.ATTIO_CLIENT_ID:
        messages.error(
            request,
            "Connecting through Attio isn't set up on this portal yet "
            "(ATTIO_CLIENT_ID is empty). Ask your administrator, or connect with an "
            "Attio API key instead.",
        )
        return redirect("dashboard")
    return redirect(start_oauth(request))


@login_required
@require_POST
def reconnect(request, pk: int):
    connection = own_connection(request, pk, restorable=True)
    if connection.method == Connection.Method.API_KEY or not settings.ATTIO_CLIENT_ID:
        return redirect("connections:connect-api-key")
    return redirect(start_oauth(request, reconnect=connection))


@never_cache
@login_required
@require_GET
@sensitive_variables()
def callback(request):
    try:
        connection, created = finish_oauth(request, request.GET)
    except ConnectError as e:
        page = render(request, "connections/connect_failed.html", {"problem": str(e)}, status=400)
        return no_referrer(page)
    verb = "Connected" if created else "Reconnected"
    messages.success(request, f"{verb} the Attio workspace “{connection.workspace_name}”.")
    return no_referrer(redirect(after_connect(request)))


@never_cache
@login_required
@sensitive_post_parameters("api_key")
@sensitive_variables()
def connect_api_key(request):
    form = AttioApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            connection, created = connect_with_api_key(
                request.user,
                form.cleaned_data["api_key"],
                ip=services.client_ip(request),
            )
        except ConnectError as e:
            form.add_error("api_key", str(e))
        else:
            verb = "Connected" if created else "Updated the key for"
            messages.success(request, f"{verb} the Attio workspace “{connection.workspace_name}”.")
            return redirect(after_connect(request))
    return render(request, "connections/connect_api_key.html", {"form": form})


@login_required
@require_POST
def check(request, pk: int):
    connection = freshness.check_connection(
        own_connection(request, pk), by=request.user, ip=services.client_ip(request)
    )
    if connection.status == Connection.Status.ACTIVE and not connection.last_error_code:
        messages.success(request, f"“{connection.workspace_name}” is working.")
    elif connection.status == Connection.Status.ACTIVE:
        messages.warning(
            request,
            f"Couldn't reach Attio to check “{connection.workspace_name}”: "
            f"{connection.last_error_message} The connection is kept; try again later.",
        )
    else:
        messages.error(
            request,
            f"“{connection.workspace_name}” no longer works: reconnect it.",
        )
    return redirect("dashboard")


@login_required
def disconnect(request, pk: int):
    connection = own_connection(request, pk)
    if request.method == "POST":
        services.revoke_connection(connection, by=request.user, ip=services.client_ip(request))
        messages.success(
            request,
            f"Disconnected “{connection.workspace_name}”: its token is deleted and its API keys "
            "are revoked.",
        )
        return redirect("dashboard")
    return render(request, "connections/disconnect.html", {"connection": connection})

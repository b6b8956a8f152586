"""The portal's own pages: the dashboard, where both apps meet, and the health check."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.models import Connection

from . import health


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
        },
    )

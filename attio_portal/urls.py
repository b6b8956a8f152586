from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from . import views

admin.site.site_header = "Attio Portal administration"
admin.site.site_title = "Attio Portal admin"
admin.site.index_title = "Users, connections and keys"


def favicon(request):
    # Pages name their icon, but browsers still ask for /favicon.ico where none is
    # named (a JSON answer, an image); answer with the portal's icon, not a 404.
    return redirect(static("portal/favicon.svg"))


urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", favicon),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/sso/", views.sso_start, name="sso_start"),
    path("accounts/sso/callback/", views.sso_callback, name="sso_callback"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/usage/", admin.site.admin_view(views.usage), name="usage"),
    path(
        "admin/usage/tool-calls.csv",
        admin.site.admin_view(views.tool_calls_csv),
        name="tool_calls_csv",
    ),
    path(
        "admin/usage/audit-log.csv",
        admin.site.admin_view(views.audit_log_csv),
        name="audit_log_csv",
    ),
    path("admin/", admin.site.urls),
    path("connections/", include("connections.urls")),
    path("keys/", include("mcp_gateway.urls")),
    path("", include("mcp_gateway.oauth_urls")),
    path("", views.dashboard, name="dashboard"),
]

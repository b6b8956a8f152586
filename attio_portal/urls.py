from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from connections import views as connection_views

from . import views
from .forms import SignInForm

admin.site.site_header = "Attio Portal administration"
admin.site.site_title = "Attio Portal admin"
admin.site.index_title = "Users, connections and keys"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            authentication_form=SignInForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("connections/", include("connections.urls")),
    path("keys/", include("mcp_gateway.urls")),
    path("", connection_views.dashboard, name="dashboard"),
]

"""The OAuth authorization server's URLs: metadata at the root (RFC 8414, RFC 9728),
the endpoints under /oauth/. The namespace is django-oauth-toolkit's own, which its
metadata views reverse."""

from django.urls import path
from oauth2_provider import views

from .oauth_server import AuthorizeView, RegisterView, RegistrationView, TokenView

app_name = "oauth2_provider"

urlpatterns = [
    path(
        ".well-known/oauth-authorization-server",
        views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
    # RFC 9728: the resource's metadata, at the root and at the /mcp path's own place.
    path(
        ".well-known/oauth-protected-resource",
        views.OAuthProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource/mcp",
        views.OAuthProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata-path",
    ),
    path("oauth/authorize/", AuthorizeView.as_view(), name="authorize"),
    path("oauth/token/", TokenView.as_view(), name="token"),
    path("oauth/revoke/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/register/", RegisterView.as_view(), name="dcr-register"),
    path(
        "oauth/register/<str:client_id>/",
        RegistrationView.as_view(),
        name="dcr-register-management",
    ),
]

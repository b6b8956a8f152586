from django.urls import path

from . import views

app_name = "mcp_gateway"

urlpatterns = [
    path("new/", views.key_create, name="key-create"),
    path("<int:pk>/revoke/", views.key_revoke, name="key-revoke"),
    path("<int:pk>/roll/", views.key_roll, name="key-roll"),
    path("apps/<int:pk>/revoke/", views.app_revoke, name="app-revoke"),
]

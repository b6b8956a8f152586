from django.urls import path

from . import views

app_name = "connections"

urlpatterns = [
    path("connect/", views.connect, name="connect"),
    path("connect/api-key/", views.connect_api_key, name="connect-api-key"),
    path("callback/", views.callback, name="callback"),
    path("<int:pk>/reconnect/", views.reconnect, name="reconnect"),
    path("<int:pk>/check/", views.check, name="check"),
    path("<int:pk>/disconnect/", views.disconnect, name="disconnect"),
]

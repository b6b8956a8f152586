"""The User admin: Django's, plus deactivation that revokes what the user holds."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import ngettext

from connections.services import client_ip

from .accounts import deactivate_user

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    actions = ["deactivate_selected"]

    def save_model(self, request, obj, form, change):
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        super().save_model(request, obj, form, change)
        if deactivating:
            revoked = deactivate_user(obj, by=request.user, ip=client_ip(request))
            connections = ngettext("connection", "connections", revoked)
            self.message_user(
                request,
                f"{obj} is deactivated: {revoked} {connections} revoked, sessions ended.",
            )

    @admin.action(description="Deactivate selected users", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        users = [u for u in queryset if u.is_active and u.pk != request.user.pk]
        revoked = sum(deactivate_user(u, by=request.user, ip=client_ip(request)) for u in users)
        deactivated = ngettext("user", "users", len(users))
        connections = ngettext("connection", "connections", revoked)
        self.message_user(
            request,
            f"Deactivated {len(users)} {deactivated}; revoked {revoked} {connections}.",
        )

"""Admin for API keys and tool calls. The key secret exists nowhere to show."""

from django.contrib import admin

from connections.admin import ActionsOnlyAdmin, AuditLogAdmin, ReadOnlyAdmin, revoke_with_reason

from . import services
from .models import ApiKey, ApiKeyEvent, ToolCall


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.active()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ActionsOnlyAdmin):
    list_display = [
        "name",
        "owner",
        "workspace",
        "scope",
        "display_id",
        "created_at",
        "last_used_at",
        "expires_at",
        "key_status",
    ]
    list_filter = [KeyStatusFilter, "read_only"]
    search_fields = ["owner__email", "owner__username", "name", "public_id"]
    list_select_related = ["owner", "connection"]
    raw_id_fields = ["owner", "connection"]
    fields = [
        "name",
        "owner",
        "connection",
        "read_only",
        "display_id",
        "created_at",
        "expires_at",
        "replaced_by",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
    ]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="workspace")
    def workspace(self, obj: ApiKey) -> str:
        return obj.connection.workspace_name

    @admin.display(description="status")
    def key_status(self, obj: ApiKey) -> str:
        return obj.status()

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        return revoke_with_reason(
            self,
            request,
            queryset.select_related("owner", "connection"),
            action="revoke_selected",
            title="Revoke API keys",
            intro="MCP clients using these keys are refused from their next request on:",
            label=lambda k: f"{k.name} ({k.display_id}) of {k.owner}",
            revoke=services.revoke_api_key,
            noun="API key",
            plural="API keys",
        )


@admin.register(ApiKeyEvent)
class ApiKeyEventAdmin(AuditLogAdmin):
    pass


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "tool",
        "owner",
        "ok",
        "attio_status",
        "error_code",
        "duration_ms",
    ]
    list_filter = ["ok", "tool"]
    search_fields = ["owner__email", "owner__username", "tool"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"

"""Admin for API keys, connected apps, their OAuth clients, tool calls and tool policies. No key or
token exists anywhere to show: keys are HMAC digests, OAuth tokens SHA-256 checksums."""

from django.contrib import admin
from oauth2_provider.admin import ApplicationAdmin
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken

from connections.admin import ActionsOnlyAdmin, AuditLogAdmin, ReadOnlyAdmin, revoke_with_reason
from connections.services import client_ip

from . import services
from .forms import ToolPolicyForm
from .models import ApiKey, ApiKeyEvent, ConnectedApp, ToolCall, ToolPolicy


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
        "tool_profile",
        "display_id",
        "created_at",
        "last_used_at",
        "expires_at",
        "key_status",
    ]
    list_filter = [KeyStatusFilter, "read_only", "tool_profile"]
    search_fields = ["owner__email", "owner__username", "name", "public_id"]
    list_select_related = ["owner", "connection"]
    raw_id_fields = ["owner", "connection"]
    fields = [
        "name",
        "owner",
        "connection",
        "read_only",
        "tool_profile",
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


@admin.register(ConnectedApp)
class ConnectedAppAdmin(ActionsOnlyAdmin):
    """OAuth clients users approved. Their registered clients are under "Django OAuth
    Toolkit: Applications" (dynamic registrations and metadata documents included),
    where an admin can pre-register one or remove one; removing a client removes its
    connected apps and tokens."""

    list_display = [
        "client_name",
        "user",
        "workspace",
        "scope",
        "tool_profile",
        "created_at",
        "last_used_at",
        "app_status",
    ]
    list_filter = ["read_only", "tool_profile", "client__registration_source"]
    search_fields = ["user__email", "user__username", "client__name", "client__client_id"]
    list_select_related = ["user", "connection", "client"]
    fields = [
        "client",
        "user",
        "connection",
        "read_only",
        "tool_profile",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
    ]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        # Consents never exchanged for a token (the client went away) are not apps yet.
        return super().get_queryset(request).filter(token_family__isnull=False)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="workspace")
    def workspace(self, obj: ConnectedApp) -> str:
        return obj.connection.workspace_name

    @admin.display(description="status")
    def app_status(self, obj: ConnectedApp) -> str:
        return "revoked" if obj.revoked_at else "active"

    @admin.action(description="Revoke selected apps", permissions=["change"])
    def revoke_selected(self, request, queryset):
        return revoke_with_reason(
            self,
            request,
            queryset.select_related("user", "connection", "client"),
            action="revoke_selected",
            title="Revoke connected apps",
            intro="These apps' tokens stop working from their next request on:",
            label=lambda a: f"{a.client_name} for {a.user} on {a.connection.workspace_name}",
            revoke=services.revoke_connected_app,
            noun="connected app",
            plural="connected apps",
        )


admin.site.unregister(Application)


@admin.register(Application)
class ClientAdmin(ApplicationAdmin):
    """The toolkit's admin for OAuth clients, where removing a client removes its
    connected apps: revoked through the service first (the audit log says so), then
    deleted with the client and its tokens."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # A connected app can't be deleted on its own (revoke it instead), which would
        # otherwise make Django refuse to delete its client, even for a superuser.
        perms_needed.discard(ConnectedApp._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.remove_client(obj, by=request.user, ip=client_ip(request))

    def delete_queryset(self, request, queryset):
        for client in queryset:
            services.remove_client(client, by=request.user, ip=client_ip(request))


@admin.register(ApiKeyEvent)
class ApiKeyEventAdmin(AuditLogAdmin):
    pass


# The toolkit's token, code and ID token rows: nothing an admin acts on one by one
# (revoke a connected app instead), and nothing to read but checksums.
for model in (AccessToken, RefreshToken, Grant, IDToken):
    admin.site.unregister(model)


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "tool",
        "owner",
        "made_with",
        "ok",
        "attio_status",
        "error_code",
        "duration_ms",
    ]
    list_filter = ["ok", "tool"]
    search_fields = ["owner__email", "owner__username", "tool"]
    list_select_related = ["owner", "api_key", "connected_app__client"]
    date_hierarchy = "created_at"

    @admin.display(description="made with")
    def made_with(self, obj: ToolCall) -> str:
        """The API key (its display id) or the OAuth client the call was made with."""
        if obj.api_key is not None:
            return f"API key {obj.api_key.display_id}"
        if obj.connected_app is not None:
            return f"OAuth app {obj.connected_app.client_name}"
        return "—"


@admin.register(ToolPolicy)
class ToolPolicyAdmin(admin.ModelAdmin):
    """Tool sets for groups and users. A user under none keeps every tool; under several,
    the tools any of them allows (models.ToolPolicy). Saved, it counts from the next MCP
    request of every key and app it covers."""

    form = ToolPolicyForm
    list_display = ["name", "all_read_tools", "tool_count", "group_names", "user_count"]
    search_fields = ["name", "description"]
    filter_horizontal = ["groups", "users"]
    fields = ["name", "description", "all_read_tools", "tools", "groups", "users"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "users")

    @admin.display(description="tools named")
    def tool_count(self, obj: ToolPolicy) -> int:
        # What the form saves is a list; a row written otherwise (a shell, a fixture)
        # counts as naming none, as the gateway reads it (ToolAccess.of).
        return len(obj.tools) if isinstance(obj.tools, list) else 0

    @admin.display(description="groups")
    def group_names(self, obj: ToolPolicy) -> str:
        return ", ".join(group.name for group in obj.groups.all()) or "—"

    @admin.display(description="users")
    def user_count(self, obj: ToolPolicy) -> int:
        return len(obj.users.all())

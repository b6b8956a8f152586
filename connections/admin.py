"""Admin for connections and the audit log. No page here ever shows a token."""

from functools import partial

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import ngettext

from . import freshness, services
from .forms import RevokeReasonForm
from .models import AuditEvent, Connection, PendingRevocation


def revoke_with_reason(
    model_admin,
    request,
    queryset,
    *,
    action,
    title,
    intro,
    label,
    revoke,
    noun,
    plural,
):
    """An admin action that asks for a reason, then calls the revoke service per row.

    The message says "Revoked 1 {noun}." or "Revoked 2 {plural}."
    """
    form = RevokeReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        count = sum(
            revoke(
                obj,
                by=request.user,
                reason=form.cleaned_data["reason"],
                ip=services.client_ip(request),
            )
            for obj in queryset
        )
        nouns = ngettext(noun, plural, count)
        model_admin.message_user(request, f"Revoked {count} {nouns}.", messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "admin/revoke_with_reason.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": model_admin.model._meta,
            "items": [{"pk": obj.pk, "label": label(obj)} for obj in queryset],
            "form": form,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )


class ActionsOnlyAdmin(admin.ModelAdmin):
    """For records changed only through the list's actions: an object's own page has
    nothing to save, so it opens as a view (no Save buttons; a POST is refused), while
    the change permission the actions ask for is kept."""

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request)


@admin.register(Connection)
class ConnectionAdmin(ActionsOnlyAdmin):
    list_display = [
        "__str__",
        "owner",
        "workspace_name",
        "method",
        "status",
        "last_checked_at",
        "expires_at",
    ]
    list_filter = ["status", "method"]
    search_fields = [
        "owner__email",
        "owner__username",
        "workspace_name",
        "workspace_slug",
    ]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    # Token columns are left out entirely; a boolean says whether one exists.
    fields = [
        "owner",
        "method",
        "status",
        "workspace_name",
        "workspace_slug",
        "workspace_id",
        "attio_member_id",
        "scopes",
        "has_access_token",
        "has_refresh_token",
        "version",
        "created_at",
        "last_checked_at",
        "expires_at",
        "revoked_at",
        "notified_at",
        "last_error_code",
        "last_error_message",
    ]
    readonly_fields = fields
    actions = ["revoke_selected", "check_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead: it tells Attio and leaves an audit trail.
        return False

    @admin.display(boolean=True, description="Has access token")
    def has_access_token(self, obj: Connection) -> bool:
        return bool(obj.access_token_sealed)

    @admin.display(boolean=True, description="Has refresh token")
    def has_refresh_token(self, obj: Connection) -> bool:
        return obj.has_refresh_token

    @admin.action(description="Revoke selected connections", permissions=["change"])
    def revoke_selected(self, request, queryset):
        return revoke_with_reason(
            self,
            request,
            queryset.select_related("owner"),
            action="revoke_selected",
            title="Revoke connections",
            intro="These connections lose their Attio tokens at once; Attio is asked to "
            "revoke them, and their owners must connect again:",
            label=lambda c: f"{c} ({c.get_status_display()})",
            # Recorded as an admin's revocation even when it is the admin's own connection.
            revoke=partial(services.revoke_connection, as_admin=True),
            noun="connection",
            plural="connections",
        )

    @admin.action(description="Check now with Attio", permissions=["change"])
    def check_now(self, request, queryset):
        ip = services.client_ip(request)
        results = [freshness.check_connection(c, by=request.user, ip=ip) for c in queryset]
        working = sum(
            1 for c in results if c.status == Connection.Status.ACTIVE and not c.last_error_code
        )
        checked = ngettext("connection", "connections", len(results))
        self.message_user(request, f"Checked {len(results)} {checked}; {working} working.")


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records: listed and filtered, never added, changed or deleted."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Characters of a reason shown in the audit list (the rest is in a tooltip).
REASON_SUMMARY_CHARS = 50


class AuditLogAdmin(ReadOnlyAdmin):
    """For an audit log (who did what to whom, when, from where, why)."""

    list_display = [
        "created_at",
        "kind",
        "subject",
        "actor",
        "workspace_name",
        "ip_address",
        "reason_summary",
    ]
    list_filter = ["kind", ("subject", admin.RelatedOnlyFieldListFilter)]
    search_fields = [
        "subject__email",
        "subject__username",
        "actor__email",
        "workspace_name",
    ]
    list_select_related = ["subject", "actor"]
    date_hierarchy = "created_at"

    class Media:
        # Keeps the list's columns readable at laptop widths.
        css = {"all": ["portal/admin.css"]}

    @admin.display(description="Reason", ordering="reason")
    def reason_summary(self, obj) -> str:
        # A long reason would take the list's width; its first words are enough there,
        # the rest is in the tooltip and on the event's page.
        short = Truncator(obj.reason).chars(REASON_SUMMARY_CHARS)
        if short == obj.reason:
            return obj.reason
        return format_html('<span title="{}">{}</span>', obj.reason, short)


@admin.register(AuditEvent)
class AuditEventAdmin(AuditLogAdmin):
    pass


@admin.register(PendingRevocation)
class PendingRevocationAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "attempts",
        "created_at",
        "next_attempt_at",
        "last_error",
    ]
    fields = ["connection", "attempts", "created_at", "next_attempt_at", "last_error"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

"""API key events used to be kept in the connections' audit log; move them here.

Rows are moved, not copied: each lands in mcp_gateway_apikeyevent with the same time,
actor, owner, connection, address, reason and detail, linked to its key by public id.
"""

from django.db import migrations

KINDS = ("key_created", "key_revoked", "key_rolled")
FIELDS = (
    "created_at",
    "kind",
    "actor_id",
    "subject_id",
    "connection_id",
    "ip_address",
    "workspace_name",
    "reason",
    "detail",
)


def move(source, target, key_of):
    for event in source.objects.filter(kind__in=KINDS).order_by("pk").iterator():
        row = {name: getattr(event, name) for name in FIELDS}
        target.objects.create(**row, **key_of(event))
    source.objects.filter(kind__in=KINDS).delete()


def to_gateway(apps, schema_editor):
    ApiKey = apps.get_model("mcp_gateway", "ApiKey")
    ids = dict(ApiKey.objects.values_list("public_id", "pk"))
    move(
        apps.get_model("connections", "AuditEvent"),
        apps.get_model("mcp_gateway", "ApiKeyEvent"),
        lambda event: {"api_key_id": ids.get(event.detail.get("api_key"))},
    )


def to_connections(apps, schema_editor):
    move(
        apps.get_model("mcp_gateway", "ApiKeyEvent"),
        apps.get_model("connections", "AuditEvent"),
        lambda event: {},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0005_key_events_leave"),
        ("mcp_gateway", "0004_api_key_events"),
    ]

    operations = [migrations.RunPython(to_gateway, to_connections)]

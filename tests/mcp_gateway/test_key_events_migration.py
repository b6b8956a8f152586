"""API key events moved from the connections' audit log to the gateway's: every row is
kept, with its key linked, and the migration can be reversed."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("connections", "0004_key_rolled"), ("mcp_gateway", "0003_replaced_by")]
AFTER = [("connections", "0005_key_events_leave"), ("mcp_gateway", "0005_move_key_events")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_key_events_move_to_the_gateway_and_back():
    apps = migrate(BEFORE)
    try:
        user = apps.get_model("auth", "User").objects.create(username="alice")
        attio = apps.get_model("connections", "Connection").objects.create(
            owner=user, method="oauth", workspace_id="w1", workspace_name="Acme"
        )
        key = apps.get_model("mcp_gateway", "ApiKey").objects.create(
            owner=user, connection=attio, name="laptop", public_id="A" * 12, digest="0" * 64
        )
        events = apps.get_model("connections", "AuditEvent").objects
        events.create(
            kind="key_revoked",
            actor=user,
            subject=user,
            connection=attio,
            ip_address="203.0.113.5",
            workspace_name="Acme",
            reason="lost laptop",
            detail={"api_key": key.public_id},
        )
        events.create(kind="connected", subject=user, connection=attio, workspace_name="Acme")

        apps = migrate(AFTER)
        moved = apps.get_model("mcp_gateway", "ApiKeyEvent").objects.get()
        assert (moved.kind, moved.api_key_id, moved.actor_id, moved.subject_id) == (
            "key_revoked",
            key.pk,
            user.pk,
            user.pk,
        )
        assert (moved.connection_id, str(moved.ip_address), moved.reason) == (
            attio.pk,
            "203.0.113.5",
            "lost laptop",
        )
        assert moved.detail == {"api_key": key.public_id}
        left = apps.get_model("connections", "AuditEvent").objects.values_list("kind", flat=True)
        assert list(left) == ["connected"]

        apps = migrate(BEFORE)
        back = apps.get_model("connections", "AuditEvent").objects
        assert sorted(back.values_list("kind", flat=True)) == ["connected", "key_revoked"]
        assert back.get(kind="key_revoked").reason == "lost laptop"
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

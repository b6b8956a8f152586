"""Tool-call rows are kept for TOOL_CALL_RETENTION_DAYS, then deleted in batches by beat;
the security events stay."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mcp_gateway import services, tasks
from mcp_gateway.models import ApiKeyEvent, ToolCall


def tool_call(age: timedelta, tool: str = "get_record") -> ToolCall:
    return ToolCall.objects.create(
        created_at=timezone.now() - age, tool=tool, ok=True, duration_ms=1
    )


@pytest.fixture
def ages(db):
    """Rows 1, 179 and 181 days old."""
    return {
        "new": tool_call(timedelta(days=1)),
        "almost": tool_call(timedelta(days=179)),
        "old": tool_call(timedelta(days=181)),
    }


def test_rows_past_the_retention_are_deleted(ages, settings):
    settings.TOOL_CALL_RETENTION_DAYS = 180

    assert services.delete_old_tool_calls() == 1

    assert set(ToolCall.objects.values_list("pk", flat=True)) == {
        ages["new"].pk,
        ages["almost"].pk,
    }


def test_zero_keeps_every_row(ages, settings):
    settings.TOOL_CALL_RETENTION_DAYS = 0

    assert services.delete_old_tool_calls() == 0
    assert ToolCall.objects.count() == 3


def test_many_rows_go_in_batches(db, settings):
    settings.TOOL_CALL_RETENTION_DAYS = 30
    ToolCall.objects.bulk_create(
        ToolCall(
            created_at=timezone.now() - timedelta(days=31 + i), tool="t", ok=True, duration_ms=1
        )
        for i in range(25)
    )
    kept = tool_call(timedelta(days=29))

    assert services.delete_old_tool_calls(batch=10) == 25
    assert list(ToolCall.objects.values_list("pk", flat=True)) == [kept.pk]


def test_security_events_are_kept(alice_connection, make_key, settings):
    settings.TOOL_CALL_RETENTION_DAYS = 1
    key, _ = make_key(alice_connection)
    event = ApiKeyEvent.objects.create(
        kind=ApiKeyEvent.Kind.CREATED,
        api_key=key,
        subject_id=key.owner_id,
        connection=alice_connection,
        created_at=timezone.now() - timedelta(days=900),
    )
    tool_call(timedelta(days=900))

    assert tasks.delete_old_tool_calls() == 1
    assert ApiKeyEvent.objects.filter(pk=event.pk).exists()


def test_beat_runs_it(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["delete-old-tool-calls"]
    assert entry["task"] == "mcp_gateway.tasks.delete_old_tool_calls"
    assert entry["task"] == tasks.delete_old_tool_calls.name

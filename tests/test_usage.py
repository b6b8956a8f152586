"""The admin's usage page and the CSV exports of the audit trail."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission
from django.utils import timezone

from connections.models import AuditEvent
from mcp_gateway import usage
from mcp_gateway.models import ApiKeyEvent, RolledUpDay, ToolCall, ToolCallDay

DAY = date(2026, 11, 2)


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def call(when: datetime, *, owner=None, connection=None, tool="get_record", ok=True, ms=10):
    return ToolCall.objects.create(
        created_at=when, owner=owner, connection=connection, tool=tool, ok=ok, duration_ms=ms
    )


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(admin)
    return client


@pytest.fixture
def calls(alice, bob, alice_connection):
    """Four calls on DAY (one failed), one the day after, by two users and two tools."""
    call(at(DAY, 0, 0), owner=alice, connection=alice_connection, ms=10)
    call(at(DAY, 9), owner=alice, connection=alice_connection, tool="search_records", ms=20)
    call(at(DAY, 18), owner=bob, ok=False, ms=30)
    call(at(DAY, 23, 59), owner=alice, connection=alice_connection, ms=40)
    call(at(DAY + timedelta(days=1), 0, 0), owner=bob, ms=1000)


def test_usage_by_day_user_tool_and_workspace(calls, alice_connection):
    found = usage.usage(DAY, DAY)

    assert found.days == [DAY]
    assert (found.calls, found.errors) == ([4], [1])
    assert found.error_rate == 0.25
    # percentile_cont over 10, 20, 30, 40 ms is 25 and 38.5, read here within 2 %.
    assert found.p50_ms == [pytest.approx(25.0, rel=0.02)]
    assert found.p95_ms == [pytest.approx(38.5, rel=0.02)]
    assert found.p50_all == pytest.approx(25.0, rel=0.02)
    assert found.p95_all == pytest.approx(38.5, rel=0.02)
    assert [(s.label, s.total) for s in found.by_user] == [("alice", 3), ("bob", 1)]
    assert [(s.label, s.total) for s in found.by_tool] == [("get_record", 3), ("search_records", 1)]
    assert [(s.label, s.total) for s in found.by_workspace] == [
        (alice_connection.workspace_name, 3),
        ("(deleted connection)", 1),
    ]


def test_days_without_calls_are_zero(calls):
    found = usage.usage(DAY - timedelta(days=1), DAY + timedelta(days=2))

    assert found.calls == [0, 4, 1, 0]
    assert found.p50_ms == [None, pytest.approx(25, rel=0.02), pytest.approx(1000, rel=0.02), None]
    assert found.by_user[1].per_day == [0, 1, 1, 0]  # bob


def test_a_users_own_usage(calls, alice):
    found = usage.usage(DAY, DAY, owner=alice)
    assert found.calls == [3]
    assert [s.label for s in found.by_user] == ["alice"]


def test_past_the_top_series_the_rest_are_added_up(db):
    for n in range(usage.TOP + 3):
        for _ in range(n + 1):
            call(at(DAY), tool=f"tool_{n:02d}")

    by_tool = usage.usage(DAY, DAY).by_tool

    assert len(by_tool) == usage.TOP + 1
    assert by_tool[0].label == f"tool_{usage.TOP + 2:02d}"
    assert by_tool[-1].label == "3 others"
    assert by_tool[-1].total == 1 + 2 + 3


# --- days that are over, rolled up ----------------------------------------------------------


def test_rolled_up_days_read_as_their_rows(calls, alice):
    span = (DAY - timedelta(days=1), DAY + timedelta(days=2))
    from_rows = usage.usage(*span)
    mine_from_rows = usage.usage(*span, owner=alice)

    # From the first call's day to the last day over.
    assert usage.roll_up(now=at(DAY + timedelta(days=3), 0, 11)) == 3
    assert sorted(RolledUpDay.objects.values_list("day", flat=True)) == [
        DAY,
        DAY + timedelta(days=1),
        DAY + timedelta(days=2),
    ]
    # alice's get_record and search_records, bob's get_record.
    assert ToolCallDay.objects.filter(day=DAY).count() == 3
    # The rows themselves are no longer read for those days.
    ToolCall.objects.all().delete()

    assert usage.usage(*span) == from_rows
    assert usage.usage(*span, owner=alice).calls == mine_from_rows.calls


def rolled_up_days() -> list[date]:
    return sorted(RolledUpDay.objects.values_list("day", flat=True))


def test_a_day_is_rolled_up_once_it_has_settled(calls):
    end_of_day = at(DAY + timedelta(days=1), 0, 0)

    assert usage.roll_up(now=end_of_day + usage.SETTLE - timedelta(seconds=1)) == 0
    assert usage.roll_up(now=end_of_day + usage.SETTLE) == 1
    assert rolled_up_days() == [DAY]
    # The next day follows once it is over.
    usage.roll_up(now=end_of_day + timedelta(days=1) + usage.SETTLE)
    assert rolled_up_days()[-1] == DAY + timedelta(days=1)


def test_rows_written_late_are_counted_at_the_next_roll_up(calls):
    usage.roll_up(now=at(DAY + timedelta(days=1), 1))
    assert usage.usage(DAY, DAY).calls == [4]
    # Kept by a worker while the database was away, written the next morning.
    call(at(DAY, 23, 59, 59))

    usage.roll_up(now=at(DAY + timedelta(days=1), 2))

    assert usage.usage(DAY, DAY).calls == [5]


def test_days_past_the_retention_are_not_rolled_up_again(calls, settings):
    usage.roll_up(now=at(DAY + timedelta(days=1), 1))
    ToolCall.objects.filter(created_at__lt=at(DAY + timedelta(days=1), 0)).delete()
    settings.TOOL_CALL_RETENTION_DAYS = 1

    # The next morning: DAY's rows are gone, its roll-up is what is left of it.
    usage.roll_up(now=at(DAY + timedelta(days=2), 1))

    assert usage.usage(DAY, DAY).calls == [4]
    # The day after, never rolled up before, still is.
    assert rolled_up_days()[-1] == DAY + timedelta(days=1)


def test_today_is_read_from_the_rows(calls):
    usage.roll_up(now=at(DAY + timedelta(days=1), 1))  # DAY rolled up, the next day not
    call(at(DAY + timedelta(days=1), 5), ms=2000)

    found = usage.usage(DAY, DAY + timedelta(days=1))

    assert found.calls == [4, 2]


def test_nothing_to_roll_up(db):
    assert usage.roll_up() == 0


# --- the page ----------------------------------------------------------------------------


def test_the_page_shows_the_range(admin_client, calls):
    response = admin_client.get("/admin/usage/", {"start": "2026-11-02", "end": "2026-11-02"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>4</strong> tool calls" in page
    assert "<strong>1</strong> errors (25.0 %)" in page
    assert "p50 <strong>25 ms</strong>, p95 <strong>38 ms</strong>" in page
    assert 'id="usage-data"' in page
    assert "/static/portal/vendor/uplot/uPlot.iife.min.js" in page
    assert "tool-calls.csv?start=2026-11-02&amp;end=2026-11-02" in page
    assert response.context["chart_data"]["calls"] == [4]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"start": "2026-11-05", "end": "2026-11-01"}, "must not be after the last"),
        ({"start": "2020-01-01", "end": "2026-11-01"}, "at most 366 days"),
        ({"start": "yesterday"}, "Enter a valid date"),
    ],
)
def test_a_bad_range_says_so_and_shows_the_last_30_days(admin_client, db, query, problem):
    response = admin_client.get("/admin/usage/", query)

    assert response.status_code == 200
    assert problem in response.content.decode()
    assert len(response.context["usage"].days) == 30


def test_only_admins_who_may_see_tool_calls_get_the_page(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client.force_login(staff)

    assert client.get("/admin/usage/").status_code == 403
    assert client.get("/admin/usage/tool-calls.csv").status_code == 403
    assert client.get("/admin/usage/audit-log.csv").status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_toolcall"))
    assert client.get("/admin/usage/").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get("/admin/usage/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- CSV exports -----------------------------------------------------------------------------


def read_csv(response) -> list[dict]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    # Streamed as ASGI serves it, a chunk of rows at a time (an async iterator: Django
    # reads a plain one whole before sending it).
    assert response.streaming and response.is_async

    async def received() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    return list(csv.DictReader(io.StringIO(async_to_sync(received)().decode())))


def test_tool_calls_csv_has_the_days_asked_for(admin_client, calls):
    response = admin_client.get(
        "/admin/usage/tool-calls.csv", {"start": "2026-11-02", "end": "2026-11-02"}
    )

    assert 'filename="tool-calls-2026-11-02-to-2026-11-02.csv"' in response["Content-Disposition"]
    rows = read_csv(response)
    assert [(r["user"], r["tool"], r["ok"], r["duration_ms"]) for r in rows] == [
        ("alice", "get_record", "true", "10"),
        ("alice", "search_records", "true", "20"),
        ("bob", "get_record", "false", "30"),
        ("alice", "get_record", "true", "40"),
    ]
    assert rows[0]["created_at"] == "2026-11-02T00:00:00+00:00"


def test_csv_cells_are_never_formulas(admin_client, django_user_model):
    sneaky = django_user_model.objects.create_user("=HYPERLINK(1)")
    for tool in ("@SUM", "\t=1+1", " =1", "\uff1d1+1", "-2"):
        call(at(DAY), owner=sneaky, tool=tool)

    rows = read_csv(admin_client.get("/admin/usage/tool-calls.csv", {"start": "2026-11-02"}))

    assert {row["user"] for row in rows} == {"'=HYPERLINK(1)"}
    assert sorted(row["tool"] for row in rows) == sorted(
        ["'@SUM", "'\t=1+1", "' =1", "'\uff1d1+1", "'-2"]
    )


def test_audit_log_csv_merges_both_logs_in_time_order(admin_client, alice, alice_connection):
    from mcp_gateway.models import ApiKey

    key, _ = ApiKey.objects.issue(alice, connection=alice_connection, name="k")
    AuditEvent.objects.create(kind=AuditEvent.Kind.CONNECTED, subject=alice, created_at=at(DAY, 8))
    ApiKeyEvent.objects.create(
        kind=ApiKeyEvent.Kind.CREATED, api_key=key, subject=alice, created_at=at(DAY, 9)
    )
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.REVOKED_BY_ADMIN, subject=alice, reason="-left", created_at=at(DAY, 10)
    )
    AuditEvent.objects.create(kind=AuditEvent.Kind.CHECKED, created_at=at(DAY + timedelta(2)))

    rows = read_csv(
        admin_client.get("/admin/usage/audit-log.csv", {"start": "2026-11-02", "end": "2026-11-02"})
    )

    assert [(r["kind"], r["api_key"], r["reason"]) for r in rows] == [
        ("connected", "", ""),
        ("key_created", key.display_id, ""),
        ("revoked_by_admin", "", "'-left"),
    ]


# --- a user's own usage, on the dashboard -------------------------------------------------


def test_the_dashboard_shows_a_users_own_usage(client, alice, bob, alice_connection):
    now = timezone.now()
    for n in range(3):
        call(now - timedelta(hours=n), owner=alice, tool="search_records", ok=n != 0)
    call(now, owner=bob, tool="delete_record")
    call(now - timedelta(days=40), owner=alice, tool="get_record")  # too long ago
    client.force_login(alice)

    page = client.get("/").content.decode()

    assert "<strong>3</strong> tool calls · <strong>1</strong> errors (33.3 %)" in page
    assert "search_records" in page
    assert "delete_record" not in page and "get_record" not in page


def test_the_dashboard_says_when_there_is_no_usage(client, alice):
    client.force_login(alice)
    assert "No tool calls in the last 30 days." in client.get("/").content.decode()

"""The admin's usage page in Chromium: its charts drawn by the uPlot the portal serves
itself (nothing fetched from elsewhere), the range form, and the CSV export. Screenshots go
to test-artifacts/usage/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import REPO, Service, _manage

SCREENSHOTS = REPO / "test-artifacts" / "usage"

expect.set_options(timeout=15_000)

# Two weeks of tool calls by staff and alice, some failed, durations 40-1,500 ms.
SEED = """
import datetime as dt
from django.contrib.auth.models import User
from django.utils import timezone
from mcp_gateway.models import ToolCall
users = list(User.objects.order_by("username"))
now = timezone.now()
tools = ["search_records", "get_record", "query_records", "create_note", "list_meetings"]
ToolCall.objects.bulk_create(
    ToolCall(
        created_at=now - dt.timedelta(hours=n * 7 % (14 * 24)),
        owner=users[n % len(users)],
        tool=tools[n % len(tools)],
        ok=n % 17 != 0,
        duration_ms=40 + (n * 37) % 1460,
    )
    for n in range(1200)
)
"""


@pytest.fixture(scope="module")
def admin_page(browser, service: Service):
    _manage(service.env, "shell", "-c", SEED)
    context = browser.new_context(
        base_url=service.base_url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", service.passwords["staff"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{service.base_url}/admin/")
    yield page
    context.close()


def test_usage_page_draws_its_charts_from_the_portal_alone(admin_page: Page, service: Service):
    requested: list[str] = []
    errors: list[str] = []
    admin_page.on("request", lambda request: requested.append(request.url))
    admin_page.on("pageerror", lambda error: errors.append(str(error)))
    admin_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    admin_page.get_by_role("link", name="Usage").click()
    admin_page.wait_for_url(f"{service.base_url}/admin/usage/")

    expect(admin_page.locator("#usage .chart[data-drawn=true]")).to_have_count(6)
    expect(admin_page.locator("#usage .chart canvas")).to_have_count(6)
    expect(admin_page.locator(".usage-totals")).to_contain_text("1,200 tool calls")
    expect(admin_page.locator(".usage-tables")).to_contain_text("search_records")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin_page.screenshot(path=str(SCREENSHOTS / "usage-30-days.png"), full_page=True)
    assert errors == []
    assert [url for url in requested if not url.startswith(service.base_url)] == []


def test_usage_page_range_and_export(admin_page: Page, service: Service):
    admin_page.goto("/admin/usage/")
    end = admin_page.input_value("#id_end") or admin_page.evaluate(
        "new Date().toISOString().slice(0, 10)"
    )
    admin_page.fill("#id_start", end)
    admin_page.fill("#id_end", end)
    admin_page.get_by_role("button", name="Show").click()
    expect(admin_page.locator(".usage-range-days")).to_contain_text("(UTC)")
    today_calls = admin_page.locator(".usage-totals strong").first.inner_text()
    assert 0 < int(today_calls.replace(",", "")) < 1200
    admin_page.screenshot(path=str(SCREENSHOTS / "usage-one-day.png"), full_page=True)

    with admin_page.expect_download() as download:
        admin_page.locator(".usage-exports").get_by_role("link", name="tool calls").click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("created_at,user,workspace,api_key")
    assert len(lines) - 1 == int(today_calls.replace(",", ""))

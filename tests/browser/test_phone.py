"""The pages a new user sees in the first hour, on a 390 px wide phone; the dashboard also
on a portrait tablet, and at 900 and 1280 px so the phone layout costs the desktop nothing.

One service, one fake Attio, one phone-sized browser: alice connects two workspaces
(OAuth and an API key), creates two keys and rolls one, so both dashboard tables have
rows with every kind of action. Screenshots go to test-artifacts/phone/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import REPO, Service

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}  # portrait; the stacked rows go up to 820 px
LAPTOP = {"width": 900, "height": 700}  # just above that: the tables as tables
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = REPO / "test-artifacts" / "phone"

expect.set_options(timeout=15_000)


def snap(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"{width}-{name}.png"), full_page=True)


def create_key(page: Page, base: str, name: str, workspace: str, access: str | None) -> None:
    """Through the form; `access=None` keeps the form's default."""
    page.goto(f"{base}/keys/new/")
    page.fill("#id_name", name)
    page.select_option("#id_connection", label=workspace)
    if access:
        page.check(f"input[name=access][value={access}]")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("h1")).to_have_text(f"Your new API key: {name}")
    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{base}/")


@pytest.fixture(scope="module")
def phone(browser, service: Service):
    """alice, signed in on a phone, with two connections, a rolled key and a fresh one."""
    base = service.base_url
    context = browser.new_context(
        base_url=base, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    context.set_default_navigation_timeout(20_000)
    page = context.new_page()
    # Set up at desktop width: what this module tests is how it looks afterwards.
    page.set_viewport_size(DESKTOP)

    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", service.passwords["alice"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")

    page.get_by_role("button", name="Connect Attio").click()
    page.wait_for_url(re.compile(re.escape(service.fake_url) + r"/authorize\?"))
    page.select_option("#workspace", label="Acme (acme)")
    page.click("#approve")
    page.wait_for_url(f"{base}/")

    page.get_by_role("link", name="Use an Attio API key").click()
    page.fill("#id_api_key", service.fake.add_api_key("globex"))
    page.get_by_role("button", name="Connect").click()
    page.wait_for_url(f"{base}/")
    expect(rows(page, "Attio connections")).to_have_count(2)

    create_key(page, base, "Claude Code on my laptop", "Acme", "read_write")
    create_key(page, base, "Nightly export to the data warehouse", "Globex", None)
    rows(page, "API keys").filter(has_text="Claude Code").get_by_role("button", name="Roll").click()
    expect(page.locator("h1")).to_have_text("Your new API key: Claude Code on my laptop")
    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{base}/")
    expect(rows(page, "API keys")).to_have_count(3)
    page.set_viewport_size(PHONE)
    yield page
    context.close()


def rows(page: Page, card: str):
    return page.locator("section.card", has=page.locator("h2", has_text=card)).locator("tbody tr")


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def assert_reachable(page: Page, buttons) -> None:
    """Each button lies inside the window (horizontally as laid out, vertically once
    scrolled to) and a tap would land on it."""
    width = page.viewport_size["width"]
    height = page.viewport_size["height"]
    page.evaluate("window.scrollTo(0, 0)")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        label = button.inner_text().strip()
        # Document coordinates before anything scrolls: a button in a table that
        # overflows its card (or the page) is out to the right here.
        left, right = button.evaluate(
            "b => { const r = b.getBoundingClientRect();"
            " return [r.left + window.scrollX, r.right + window.scrollX]; }"
        )
        assert left >= 0 and right <= width, (
            f"the {label!r} button spans x={left:.0f}..{right:.0f}, outside the {width} px window"
        )
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None, f"the {label!r} button has no box"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (label, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (label, box)
        # Visible, enabled, not covered: Playwright's checks without the click itself.
        button.click(trial=True, timeout=5_000)


def row_buttons(page: Page):
    return page.locator("section.card tbody tr").locator("button, a.button")


# The cells whose ::before label (from data-label) overlaps any of their own text.
LABEL_OVERLAPS = """cells => cells.filter(cell => {
    const label = getComputedStyle(cell, '::before');
    if (label.content === 'none' || label.display === 'none') return false;
    const c = cell.getBoundingClientRect();
    const left = c.left + (parseFloat(label.left) || 0), top = c.top + (parseFloat(label.top) || 0);
    const right = left + parseFloat(label.width), bottom = top + parseFloat(label.height);
    const range = document.createRange();
    range.selectNodeContents(cell);
    return [...range.getClientRects()].some(r => r.width > 0 &&
        r.left < right && left < r.right && r.top < bottom && top < r.bottom);
}).map(cell => cell.dataset.label + ': ' + cell.innerText.trim().slice(0, 40))"""


@pytest.mark.parametrize("viewport", [PHONE, TABLET], ids=["390", "768"])
def test_dashboard_fits_a_phone(phone: Page, service: Service, viewport):
    phone.set_viewport_size(viewport)
    width = viewport["width"]
    phone.goto(f"{service.base_url}/")
    snap(phone, "dashboard")
    expect(rows(phone, "Attio connections")).to_have_count(2)
    expect(rows(phone, "API keys")).to_have_count(3)
    # Check now, Reconnect and Disconnect twice; Roll on one key, Revoke on all three.
    connection_buttons = rows(phone, "Attio connections").locator("button, a.button")
    key_buttons = rows(phone, "API keys").locator("button, a.button")
    expect(connection_buttons).to_have_count(6)
    expect(key_buttons).to_have_count(5)

    assert horizontal_overflow(phone) <= 0, (
        f"the dashboard is {horizontal_overflow(phone)} px wider than a {width} px screen"
    )
    assert_reachable(phone, row_buttons(phone))
    # Each value keeps its column's name, since the header row is not above it, and the
    # name doesn't sit on top of the value.
    status = rows(phone, "Attio connections").first.locator("td", has=phone.locator(".badge"))
    expect(status).to_have_attribute("data-label", "Status")
    overlaps = phone.locator("section.card tbody td[data-label]").evaluate_all(LABEL_OVERLAPS)
    assert overlaps == [], overlaps
    for card in ("Attio connections", "API keys"):
        phone.locator("section.card", has=phone.locator("h2", has_text=card)).screenshot(
            path=str(SCREENSHOTS / f"{width}-dashboard-{card.split()[-1].lower()}.png")
        )


@pytest.mark.parametrize("viewport", [LAPTOP, DESKTOP], ids=["900", "1280"])
def test_dashboard_still_a_table_on_a_desktop(phone: Page, service: Service, viewport):
    phone.set_viewport_size(viewport)
    phone.goto(f"{service.base_url}/")
    snap(phone, "dashboard")
    assert horizontal_overflow(phone) <= 0
    for card in ("Attio connections", "API keys"):
        table = phone.locator("section.card", has=phone.locator("h2", has_text=card))
        expect(table.locator("thead")).to_be_visible()
        first = rows(phone, card).first
        assert first.evaluate("r => getComputedStyle(r).display") == "table-row"
        # One line of cells: every cell starts at the row's top.
        tops = first.locator("td").evaluate_all(
            "cells => cells.map(c => Math.round(c.getBoundingClientRect().top))"
        )
        assert len(set(tops)) == 1, tops
    assert_reachable(phone, row_buttons(phone))


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390", "1280"])
def test_key_form_radios_sit_left_of_their_labels(phone: Page, service: Service, viewport):
    phone.set_viewport_size(viewport)
    phone.goto(f"{service.base_url}/keys/new/")
    snap(phone, "key-form")
    assert horizontal_overflow(phone) <= 0
    radios = phone.locator("input[name=access]")
    expect(radios).to_have_count(2)
    for i in range(radios.count()):
        radio, text = radios.nth(i).evaluate(
            """input => {
                const label = input.closest('label');
                const range = document.createRange();
                range.setStartAfter(input);
                range.setEnd(label, label.childNodes.length);
                const r = input.getBoundingClientRect(), t = range.getClientRects()[0];
                return [[r.left, r.top, r.right, r.bottom], [t.left, t.top, t.right, t.bottom]];
            }"""
        )
        # The radio is left of the first line of its text, and on that line.
        assert radio[2] <= text[0], (radio, text)
        assert radio[1] < text[3] and text[1] < radio[3], (radio, text)
    # Least privilege unless the user asks for more.
    expect(phone.locator("input[name=access][value=read_only]")).to_be_checked()


def test_change_password_page_has_a_way_back(phone: Page, service: Service):
    phone.set_viewport_size(PHONE)
    phone.goto(f"{service.base_url}/accounts/password_change/")
    snap(phone, "password-change")
    assert horizontal_overflow(phone) <= 0
    phone.get_by_role("link", name="Cancel").click()
    phone.wait_for_url(f"{service.base_url}/")


def test_disconnect_page_says_the_keys_are_revoked(phone: Page, service: Service):
    phone.set_viewport_size(PHONE)
    phone.goto(f"{service.base_url}/")
    acme = rows(phone, "Attio connections").filter(has_text="Acme")
    phone.goto(acme.get_by_role("link", name="Disconnect").get_attribute("href"))
    expect(phone.locator("h1")).to_have_text("Disconnect “Acme”?")
    snap(phone, "disconnect")
    assert horizontal_overflow(phone) <= 0
    expect(phone.locator("main")).to_contain_text("Its API keys are revoked for good")
    phone.get_by_role("link", name="Cancel").click()
    phone.wait_for_url(f"{service.base_url}/")

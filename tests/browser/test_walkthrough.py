"""A team member's walk-through in a real browser, against the whole running service.

The steps run in order and share one service, one browser and one fake Attio: alice
connects Attio, creates keys, uses one from an MCP client, an admin revokes her
connection and she reconnects, then Attio stops accepting the token and the beat
sweep notices. A step that needs an earlier one fails (never skips) when it didn't
complete.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.leaks import leaks as find_leaks

from .conftest import Pages, Service, mcp

KEY_PATTERN = re.compile(r"attp_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}")
REVOKE_REASON = "Laptop reported stolen (ticket SEC-42)"
NOTE_TITLE = "Met at the Analytical Engine demo"
NOTE_BODY = "Ada wants a follow-up about the Bernoulli numbers program."
SWEEP_TIMEOUT = 20  # seconds; a beat cycle is a 2 s sweep after a 3 s validation interval

expect.set_options(timeout=15_000)


class Journey:
    """What the steps so far achieved, for the steps after them."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.keys: dict[str, str] = {}
        self.note_id = ""
        self.reload_keys: list[str] = []
        self.alice: Page | None = None

    def require(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.fail(f"needs the earlier step(s) {missing}, which did not complete")


@pytest.fixture(scope="module")
def journey(browser, service: Service):
    journey = Journey()
    context = browser.new_context(base_url=service.base_url)
    context.set_default_timeout(15_000)
    context.set_default_navigation_timeout(20_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=service.base_url)
    journey.alice = context.new_page()
    yield journey
    context.close()


def sign_in(page: Page, service: Service, username: str, pages: Pages) -> None:
    page.goto(f"{service.base_url}/accounts/login/")
    pages.snap(page, f"{username}-sign-in")
    page.fill("#id_username", username)
    page.fill("#id_password", service.passwords[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{service.base_url}/")


def consent(page: Page, service: Service, pages: Pages, decision: str, name: str) -> None:
    """On the fake Attio's consent page: pick Acme, then approve or deny."""
    page.wait_for_url(re.compile(re.escape(service.fake_url) + r"/authorize\?"))
    expect(page.locator("#workspace")).to_be_visible()
    page.select_option("#workspace", label="Acme (acme)")
    pages.snap(page, name)
    page.click(f"#{decision}")


def connection_row(page: Page):
    return page.locator("section.card", has_text="Attio connections").locator("tbody tr")


def tool_text(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_step1_alice_connects_attio_and_a_denial_is_explained(journey, service, pages):
    page = journey.alice
    base = service.base_url
    sign_in(page, service, "alice", pages)
    expect(page.get_by_text("No Attio workspace connected yet.")).to_be_visible()
    pages.snap(page, "alice-dashboard-empty")

    # Connect Attio → the fake's consent page → Approve → back on the dashboard.
    page.get_by_role("button", name="Connect Attio").click()
    consent(page, service, pages, "approve", "consent-approve")
    page.wait_for_url(f"{base}/")
    expect(page.locator(".messages")).to_contain_text("Connected the Attio workspace “Acme”")
    rows = connection_row(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Acme")
    expect(rows.first.locator(".badge")).to_have_text("Active")
    pages.snap(page, "alice-dashboard-connected")

    # Start again and Deny: a page that says what happened, nothing new connected.
    page.get_by_role("button", name="Connect Attio").click()
    consent(page, service, pages, "deny", "consent-deny")
    page.wait_for_url(re.compile(re.escape(f"{base}/connections/callback/")))
    expect(page.locator("h1")).to_have_text("Attio wasn't connected")
    expect(page.locator("main")).to_contain_text(
        "You declined access on Attio's page, so nothing was connected."
    )
    pages.snap(page, "connect-declined")
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url(f"{base}/")
    expect(connection_row(page)).to_have_count(1)
    expect(connection_row(page).first.locator(".badge")).to_have_text("Active")
    pages.snap(page, "alice-dashboard-after-declining")
    journey.done.add("connected")


def create_key(page: Page, service: Service, pages: Pages, name: str, access: str) -> str:
    base = service.base_url
    page.goto(f"{base}/")
    page.get_by_role("link", name="New API key").click()
    page.wait_for_url(f"{base}/keys/new/")
    page.fill("#id_name", name)
    page.select_option("#id_connection", label="Acme")
    page.check(f"input[name=access][value={access}]")
    page.select_option("#id_expires", "30")
    pages.snap(page, f"key-form-{access}")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("h1")).to_have_text(f"Your new API key: {name}")
    plaintext = page.locator("#key").inner_text().strip()
    assert KEY_PATTERN.fullmatch(plaintext), plaintext
    pages.snap(page, f"key-created-{access}", shows_new_key=True)
    return plaintext


def test_step2_keys_are_shown_once_and_the_claude_code_command_copies(journey, service, pages):
    journey.require("connected")
    page = journey.alice
    base = service.base_url

    read_only = create_key(page, service, pages, "Inspector (read only)", "read_only")
    journey.keys["read_only"] = read_only
    expect(page.locator(".page-head .muted")).to_contain_text("Acme · read-only")

    # Reloading the page that showed the key does not show it again. (Whether the
    # reload made another key is checked by the next test, so the walk-through goes on.)
    page.reload()
    page.wait_for_load_state("load")
    html = pages.snap(page, "key-created-reloaded", shows_new_key=True)
    assert read_only not in html, "reloading the new-key page showed the same secret again"
    journey.reload_keys = sorted(set(KEY_PATTERN.findall(html)))
    for i, plaintext in enumerate(journey.reload_keys):
        journey.keys[f"made-by-reload-{i}"] = plaintext

    read_write = create_key(page, service, pages, "Claude Code on my laptop", "read_write")
    journey.keys["read_write"] = read_write
    assert read_write != read_only

    # The Copy button puts the ready-to-paste Claude Code command on the clipboard.
    copy = page.locator('[data-copy="claude-code"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    clipboard = page.evaluate("navigator.clipboard.readText()")
    assert clipboard.startswith("claude mcp add --transport http "), clipboard
    assert f"{base}/mcp" in clipboard, clipboard
    assert f"Authorization: Bearer {read_write}" in clipboard, clipboard
    assert clipboard == page.locator("#claude-code").inner_text()

    # Never again: not on the dashboard, not on a reload of it.
    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{base}/")
    keys_card = page.locator("section.card", has_text="API keys")
    expect(keys_card.locator("tbody tr", has_text="Inspector (read only)").first).to_be_visible()
    expect(keys_card.locator("tbody tr", has_text="Claude Code on my laptop")).to_have_count(1)
    expect(keys_card.locator("tbody tr", has_text="read-write")).to_have_count(1)
    expect(keys_card).to_contain_text(f"{base}/mcp")
    html = pages.snap(page, "dashboard-with-keys")
    assert not [k for k in journey.keys.values() if k in html], "a key secret is on the dashboard"
    page.reload()
    expect(keys_card.locator("tbody tr", has_text="Claude Code on my laptop")).to_have_count(1)
    html = pages.snap(page, "dashboard-with-keys-reloaded")
    assert not [k for k in journey.keys.values() if k in html], "a key secret is on the dashboard"
    journey.done.add("keys")


def test_step2b_reloading_the_new_key_page_creates_no_second_key(journey, service, pages):
    journey.require("keys")
    page = journey.alice
    page.goto(f"{service.base_url}/")
    keys_card = page.locator("section.card", has_text="API keys")
    expect(keys_card.locator("tbody tr", has_text="Claude Code on my laptop")).to_have_count(1)
    read_only_rows = keys_card.locator("tbody tr", has_text="Inspector (read only)").count()
    pages.snap(page, "dashboard-key-list")
    assert journey.reload_keys == [] and read_only_rows == 1, (
        "reloading the page that showed a new key submitted the form again: it created "
        f"{read_only_rows - 1} more live key(s) named 'Inspector (read only)' and showed its "
        "secret on the reloaded page"
    )


def test_step2c_a_rolled_key_shows_as_replaced_until_it_ends(journey, service, pages):
    journey.require("keys")
    page = journey.alice
    journey.keys["to-roll"] = create_key(page, service, pages, "Nightly export", "read_only")
    page.goto(f"{service.base_url}/")
    keys_card = page.locator("section.card", has_text="API keys")
    rows = keys_card.locator("tbody tr", has_text="Nightly export")
    rows.get_by_role("button", name="Roll").click()
    expect(page.locator("h1")).to_have_text("Your new API key: Nightly export")
    expect(page.locator("main")).to_contain_text("keeps working until")
    successor = page.locator("#key").inner_text().strip()
    journey.keys["rolled-successor"] = successor
    assert KEY_PATTERN.fullmatch(successor) and successor != journey.keys["to-roll"]
    pages.snap(page, "key-rolled", shows_new_key=True)

    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{service.base_url}/")
    expect(rows).to_have_count(2)
    successor_id = successor[: successor.rindex("_")]
    expect(rows.filter(has_text="replaced by")).to_contain_text(successor_id)
    # Only the successor can be rolled now.
    expect(rows.get_by_role("button", name="Roll")).to_have_count(1)
    expect(rows.filter(has_text="replaced by").get_by_role("button", name="Roll")).to_have_count(0)
    pages.snap(page, "dashboard-rolled-key")


def test_step3_mcp_client_reads_and_writes_with_the_keys(journey, service):
    journey.require("keys")
    base = service.base_url
    fake = service.fake
    ada = fake.record_id("people", "Ada Lovelace", workspace="acme")

    async def tool_names(client):
        return {tool.name: tool for tool in (await client.list_tools()).tools}

    read_tools = mcp(base, journey.keys["read_only"], tool_names)
    all_tools = mcp(base, journey.keys["read_write"], tool_names)
    assert {"get_note", "list_notes", "search_records"} <= set(read_tools)
    assert "create_note" not in read_tools and "delete_record" not in read_tools
    # Read-only keys also see attio_request, which answers them reads only.
    assert all(
        t.annotations and t.annotations.read_only_hint
        for name, t in read_tools.items()
        if name != "attio_request"
    )
    assert {"create_note", "get_note", "delete_note", "create_record"} <= set(all_tools)
    assert set(read_tools) < set(all_tools)

    async def write_then_read(client):
        created = await client.call_tool(
            "create_note",
            {
                "object": "people",
                "record_id": ada,
                "title": NOTE_TITLE,
                "content": NOTE_BODY,
            },
        )
        assert not created.is_error, tool_text(created)
        note_id = created.structured_content["note_id"]
        return note_id, await client.call_tool("get_note", {"note_id": note_id})

    note_id, read_back = mcp(base, journey.keys["read_write"], write_then_read)
    assert not read_back.is_error, tool_text(read_back)
    assert read_back.structured_content["title"] == NOTE_TITLE
    assert read_back.structured_content["content_plaintext"] == NOTE_BODY
    assert read_back.structured_content["parent_record_id"] == ada

    stored = fake.store("acme").notes.get(note_id)
    assert stored is not None, f"note {note_id} is not in the fake Attio's store"
    assert (stored.title, stored.parent_record_id) == (NOTE_TITLE, ada)
    assert stored.content_plaintext == NOTE_BODY
    journey.note_id = note_id
    journey.done.add("mcp")


def test_step3b_a_read_only_key_is_refused_a_write_tool_with_a_clear_error(journey, service):
    journey.require("keys")
    fake = service.fake
    ada = fake.record_id("people", "Ada Lovelace", workspace="acme")
    notes_before = len(fake.store("acme").notes)

    async def read_only_write(client):
        return await client.call_tool(
            "create_note",
            {"object": "people", "record_id": ada, "title": "x", "content": "y"},
        )

    try:
        refused = mcp(service.base_url, journey.keys["read_only"], read_only_write)
    except Exception as e:  # noqa: BLE001 (reported as the failure)
        pytest.fail(
            "the MCP SDK client could not read the portal's answer to a read-only key "
            f"calling create_note: {type(e).__name__}: {describe(e)}"
        )
    text = tool_text(refused)
    assert refused.is_error, text
    assert "This API key is read-only, so it cannot call `create_note`" in text, text
    assert f"{service.base_url}/" in text, text
    assert len(fake.store("acme").notes) == notes_before


def describe(error: BaseException) -> str:
    """The innermost message of an exception (group), on one line."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return " ".join(str(error).split())[:600]


def get_note(service: Service, journey: Journey):
    async def call(client):
        return await client.call_tool("get_note", {"note_id": journey.note_id})

    return mcp(service.base_url, journey.keys["read_write"], call)


def test_step4_admin_revokes_and_alice_reconnects(journey, service, pages, browser):
    journey.require("mcp")
    base = service.base_url

    # Staff, in a browser of their own, revokes alice's connection with a reason.
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        admin = context.new_page()
        sign_in(admin, service, "staff", pages)
        admin.goto(f"{base}/admin/connections/connection/")
        row = admin.locator("#result_list tbody tr", has_text="alice")
        expect(row).to_have_count(1)
        pages.snap(admin, "admin-connections")
        row.locator("input.action-select").check()
        admin.select_option("select[name=action]", label="Revoke selected connections")
        admin.get_by_role("button", name="Go").click()
        expect(admin.locator("#id_reason")).to_be_visible()
        admin.fill("#id_reason", REVOKE_REASON)
        pages.snap(admin, "admin-revoke-reason")
        admin.locator("input[name=apply]").click()
        expect(admin.locator(".messagelist")).to_contain_text("Revoked 1 connection.")
        expect(admin.locator("#result_list tbody tr", has_text="alice")).to_contain_text("Revoked")
        pages.snap(admin, "admin-revoked")
    finally:
        context.close()

    # Alice's next tool call says what happened and where to reconnect.
    refused = get_note(service, journey)
    text = tool_text(refused)
    assert refused.is_error, text
    assert "reconnect" in text.lower() and f"{base}/" in text, text
    assert REVOKE_REASON in text, text

    # Her dashboard shows the banner with the reason; Reconnect → approve.
    page = journey.alice
    page.goto(f"{base}/")
    banner = page.locator(".banner[role=alert]")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text("An administrator revoked your connection to “Acme”")
    expect(banner).to_contain_text(REVOKE_REASON)
    pages.snap(page, "alice-dashboard-revoked")
    banner.get_by_role("button", name="Reconnect").click()
    consent(page, service, pages, "approve", "consent-reconnect")
    page.wait_for_url(f"{base}/")
    expect(page.locator(".messages")).to_contain_text("Reconnected the Attio workspace “Acme”")
    expect(page.locator(".banner[role=alert]")).to_have_count(0)
    expect(connection_row(page)).to_have_count(1)
    expect(connection_row(page).first.locator(".badge")).to_have_text("Active")
    pages.snap(page, "alice-dashboard-reconnected")

    # The same key works again.
    again = get_note(service, journey)
    assert not again.is_error, tool_text(again)
    assert again.structured_content["title"] == NOTE_TITLE
    journey.done.add("reconnected")


def test_step5_attio_deactivating_the_token_shows_needs_reconnect(journey, service, pages):
    journey.require("reconnected")
    page = journey.alice
    base = service.base_url
    assert service.emails() == [], "an email went out before anything went wrong"

    service.fake.revoke_all()
    revoked_at = time.monotonic()
    badge = connection_row(page).first.locator(".badge")
    while True:
        page.goto(f"{base}/")
        if badge.inner_text().strip() == "Needs reconnect":
            print(f"needs reconnect shown {time.monotonic() - revoked_at:.1f}s after revoke_all")
            break
        if time.monotonic() - revoked_at > SWEEP_TIMEOUT:
            pages.snap(page, "alice-dashboard-still-active")
            raise AssertionError(
                f"no 'Needs reconnect' within {SWEEP_TIMEOUT}s of Attio deactivating the "
                f"token; the badge says {badge.inner_text()!r}.\n{service.log_tail()}"
            )
        time.sleep(1)
    banner = page.locator(".banner[role=alert]")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text("“Acme” needs reconnecting.")
    expect(banner.get_by_role("button", name="Reconnect")).to_be_visible()
    pages.snap(page, "alice-dashboard-needs-reconnect")

    # Her assistant hears the same, with where to go.
    refused = get_note(service, journey)
    assert refused.is_error and f"{base}/" in tool_text(refused), tool_text(refused)

    journey.done.add("needs_reconnect")


def test_step5b_alice_gets_exactly_one_email_about_it(journey, service):
    journey.require("needs_reconnect")
    base = service.base_url
    # Exactly one email, and still one a few beat cycles later.
    deadline = time.monotonic() + SWEEP_TIMEOUT
    while not service.emails() and time.monotonic() < deadline:
        time.sleep(0.5)
    emails = service.emails()
    assert len(emails) == 1, (
        f"expected one reconnect email in EMAIL_FILE_PATH, found {len(emails)}. "
        f"Worker log:\n{mail_log(service)}"
    )
    time.sleep(8)  # four sweeps
    assert len(service.emails()) == 1, [p.name for p in service.emails()]
    message = emails[0].read_text()
    assert "To: alice@example.com" in message, message
    assert "Acme" in message and f"{base}/" in message, message


def mail_log(service: Service) -> str:
    lines = service.log().splitlines()
    wanted = re.compile(r"notify_needs_reconnect|ERROR|Traceback|\w+Error:")
    picked = [line for line in lines if wanted.search(line)]
    return "\n".join(picked[:40]) or service.log_tail()


def test_step6_no_secrets_in_logs_pages_emails_database_or_broker(journey, service, pages):
    journey.require("keys")
    fake_secrets = service.fake.all_secrets()
    assert len(fake_secrets) >= 3  # the client secret, a token and a code at least
    keys = list(journey.keys.values())
    log = service.log()
    emails = {p.name: p.read_text(errors="replace") for p in service.emails()}

    leaks = [f"service log: {s[:12]}…" for s in [*fake_secrets, *keys] if s in log]
    for name, text in emails.items():
        leaks += [f"email {name}: {s[:12]}…" for s in [*fake_secrets, *keys] if s in text]
    for snapshot in pages.seen:
        leaks += [f"page {snapshot.name}: {s[:12]}…" for s in fake_secrets if s in snapshot.html]
        shown = set(KEY_PATTERN.findall(snapshot.html))
        if len(shown) > (1 if snapshot.shows_new_key else 0):
            leaks.append(f"page {snapshot.name}: {len(shown)} portal key(s)")
    assert not leaks, leaks
    assert pages.seen, "no page was recorded"

    # Nor in any database row or message on the broker, in any encoding.
    secrets_and_keys = [*fake_secrets, *keys]
    assert find_leaks(service.database_dump(), secrets_and_keys) == []
    assert find_leaks(service.broker_contents(), secrets_and_keys) == []

    # And everything the portal sent the fake Attio matched Attio's published API.
    assert service.fake.spec_violations == []

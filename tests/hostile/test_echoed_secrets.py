"""A hostile Attio that echoes the token it was sent, in every encoding, in its error
bodies and headers: the token must come back nowhere the portal keeps or shows Attio's
text (tool errors, Connection rows, the audit trail, the dashboard, the reconnect email,
logs)."""

import base64
import logging
import re
import secrets
from urllib.parse import quote, quote_plus

import pytest
from django.core import mail
from django.urls import reverse

from connections import attio, freshness
from connections.models import AuditEvent, Connection
from mcp_gateway.models import ToolCall
from tests.mcp_gateway.conftest import tool_text

STATUSES = [400, 401, 403, 404, 422, 429]
# A token with characters URL-encoding changes, so that encoding differs from it.
TOKEN = "hostile+Tok/3n=" + secrets.token_urlsafe(24)
# Runs this long of any encoding count as a leak (a token cut short is still one).
LEAK_RUN = 12


def b64(text: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def encodings(secret: str) -> dict[str, str]:
    return {
        "as-is": secret,
        "url-encoded": quote(secret, safe=""),
        "url-encoded-lower-hex": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(secret)),
        "form-encoded": quote_plus(secret),
        "base64": b64(secret),
        "base64url": b64(secret, urlsafe=True),
        "base64-bearer": b64(f"Bearer {secret}"),
        "base64-basic": b64(f"user:{secret}"),
    }


ENCODINGS = list(encodings(TOKEN))


def leaked(text: str, secret: str = TOKEN) -> list[str]:
    """The encodings of `secret` of which some run of LEAK_RUN characters is in `text`."""
    return [
        name
        for name, form in encodings(secret).items()
        if any(form[i : i + LEAK_RUN] in text for i in range(len(form) - LEAK_RUN + 1))
    ]


def echo(status: int, encoding: str, secret: str = TOKEN):
    """A fake Attio error body that repeats `secret` in `encoding` in each of its fields."""
    form = encodings(secret)[encoding]
    return {
        "status_code": status,
        "type": "invalid_request_error",
        "code": form,
        "message": f"{form} is not allowed; you sent Authorization: Bearer {secret}",
        "error": form,
        "error_description": f"{form} was refused",
    }


ECHO_HEADERS = {
    "Retry-After": "3600",  # past the wait budget: the 429 ends the call
    "WWW-Authenticate": f'Bearer error="invalid_token", token="{TOKEN}"',
    "X-Echo": TOKEN,
}


@pytest.fixture
def hostile_connection(alice_connection, fake_attio):
    token = fake_attio.add_api_key("acme", token=TOKEN)
    alice_connection.set_credentials(access_token=token, refresh_token=None, expires_at=None)
    alice_connection.save()
    return alice_connection


def stored_text() -> str:
    """Everything the portal stored about connections, tool calls and their events."""
    rows = [
        *Connection.objects.values_list(),
        *AuditEvent.objects.values_list(),
        *ToolCall.objects.values_list(),
    ]
    return repr(rows)


def logged_text(caplog) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.__dict__}"
        for record in caplog.records
    )


def emailed_text() -> str:
    return "\n".join(f"{m.subject}\n{m.body}" for m in mail.outbox)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("status", STATUSES)
def test_a_tool_error_never_repeats_the_token(
    hostile_connection, make_key, call_tool, fake_attio, caplog, status, encoding
):
    caplog.set_level(logging.DEBUG)
    _, key = make_key(hostile_connection)
    ada = fake_attio.record_id("people", "Ada Lovelace", workspace="acme")
    for endpoint in ("records.get", "self"):  # a 401 makes the gateway check the token
        fake_attio.fail_next(
            endpoint, status, body=echo(status, encoding), headers=ECHO_HEADERS, times=2
        )

    result = call_tool(key, "get_record", {"object": "people", "record_id": ada})

    assert result.is_error
    assert fake_attio.calls_to("records.get")[0].status == status  # Attio did echo it
    for where, text in [
        ("tool result", tool_text(result)),
        ("database", stored_text()),
        ("logs", logged_text(caplog)),
        ("email", emailed_text()),
    ]:
        assert leaked(text) == [], where


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("status", STATUSES)
def test_a_check_keeps_attios_reason_without_the_token(
    client,
    alice,
    hostile_connection,
    fake_attio,
    caplog,
    django_capture_on_commit_callbacks,
    status,
    encoding,
):
    caplog.set_level(logging.DEBUG)
    fake_attio.fail_next("self", status, body=echo(status, encoding), headers=ECHO_HEADERS)

    with django_capture_on_commit_callbacks(execute=True):
        checked = freshness.check_connection(hostile_connection)
    freshness.notify_needs_reconnect(checked.pk)  # a no-op unless the check refused it
    client.force_login(alice)
    dashboard = client.get(reverse("dashboard")).content.decode()

    assert checked.last_error_code  # the failure was recorded
    if status != 429:  # a rate limit keeps its own wording
        assert "is not allowed" in checked.last_error_message  # Attio's reason is kept
    if status == 401:
        assert checked.status == Connection.Status.NEEDS_RECONNECT
        assert len(mail.outbox) == 1
    for where, text in [
        ("database", stored_text()),
        ("dashboard", dashboard),
        ("logs", logged_text(caplog)),
        ("email", emailed_text()),
    ]:
        assert leaked(text) == [], where


def test_a_refused_refresh_keeps_neither_refresh_token_nor_client_secret(
    alice, refreshing_attio, make_connection, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    connection = make_connection(alice, "acme")
    refresh_token = connection.refresh_token()
    secret = refreshing_attio.client_secret
    refreshing_attio.fail_next(
        "refresh",
        400,
        body={
            "error": "invalid_grant",
            "error_description": f"refresh_token {refresh_token} (client {secret}) is spent",
        },
    )

    with django_capture_on_commit_callbacks(execute=True):
        freshness.ensure_fresh(connection.pk, seen_version=connection.version)
    connection.refresh_from_db()

    assert connection.status == Connection.Status.NEEDS_RECONNECT
    assert "is spent" in connection.last_error_message
    for text in [stored_text(), logged_text(caplog), emailed_text()]:
        assert leaked(text, refresh_token) == []
        assert leaked(text, secret) == []


# --- The redaction on its own ---------------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        "Bearer abc.def-ghi",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "attio_abcdefgh12345678",
        "access_token=whatever-it-is",
        "Qm9yaW5nIHJlYWRhYmxlIGNvZGUgd2lucyE9PQ2x",
    ],
)
def test_credential_shapes_are_redacted_without_knowing_them(credential):
    redacted = attio.redact(f"Attio saw {credential} and refused")

    assert credential.split("=")[-1].split()[-1] not in redacted
    assert redacted.startswith("Attio saw ") and redacted.endswith(" and refused")
    assert attio.REDACTED in redacted


@pytest.mark.parametrize(
    "message",
    [
        'Record with ID "0b1d5f5c-6f06-4c8e-9b2f-1f6a8c9e2d34" was not found.',
        'Cannot find attribute with slug/ID "primary_email_address_2024".',
        'Entry "rec_0b1d5f5c-6f06-4c8e-9b2f-1f6a8c9e2d34" is not in this list.',
        "Bearer token is missing or malformed.",
        "Value for attribute `deal_value` must be a number, got 12345678901234567890.",
        "Value for attribute password: must be a string.",
        "secret: not found",
        "See https://docs.attio.com/rest-api/endpoint-reference/records/list-records-2024.",
        'Cannot find attribute with slug/ID "quarterly_revenue_target_for_fy2024_region_emea".',
    ],
)
def test_ordinary_attio_messages_are_kept(message):
    assert attio.redact(message, [TOKEN]) == message


def test_a_token_cut_short_is_still_redacted():
    assert attio.redact(f"got {TOKEN[:-9]}…", [TOKEN]) == f"got {attio.REDACTED}…"

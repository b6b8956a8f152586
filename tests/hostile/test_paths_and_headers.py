"""Text from Attio that would change where a request goes or what an email's headers say:
`.` and `..` path segments, and line breaks in a workspace name."""

import asyncio

import pytest
from django.core import mail

from connections import attio, freshness
from connections.models import Connection


@pytest.mark.parametrize("segment", [".", ".."])
def test_a_dot_segment_is_refused_before_anything_is_sent(
    alice_connection, fake_attio, monkeypatch, segment
):
    monkeypatch.setattr(attio, "async_transport", fake_attio.async_transport())
    attio._async_clients.clear()
    token = alice_connection.access_token()

    async def list_options():
        # As if Attio had named an attribute ".." and a tool asked for its options.
        return await attio.alist_select_options(token, "objects", "people", segment)

    with pytest.raises(attio.AttioError) as refused:
        asyncio.run(list_options())

    assert (refused.value.status, refused.value.code) == (400, "invalid_path_segment")
    assert f"“{segment}” cannot be a segment of an Attio path" in refused.value.message
    assert fake_attio.calls == []  # httpx would have sent /v2/objects/people/attributes/options


def test_ordinary_segments_are_quoted_not_refused():
    assert attio.path("/v2/lists/{}/entries/{}", "a.b", "../x") == "/v2/lists/a.b/entries/..%2Fx"


def test_a_line_break_in_the_workspace_name_stays_out_of_the_email_headers(bob_connection):
    bob_connection.workspace_name = "Acme\r\nBcc: mallory@example.com\nX-Evil: 1"
    bob_connection.status = Connection.Status.NEEDS_RECONNECT
    bob_connection.save()

    assert freshness.notify_needs_reconnect(bob_connection.pk)

    [sent] = mail.outbox
    assert sent.subject == (
        "Reconnect your Attio workspace “Acme Bcc: mallory@example.com X-Evil: 1”"
    )
    message = sent.message()
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert sent.recipients() == [bob_connection.owner.email]

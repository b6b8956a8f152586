"""CSV exports of the audit trail for a range of days, for a SIEM or a spreadsheet: the
tool calls, and the audit log (connection events and API key / connected app events in
one time-ordered file). Streamed: rows are read from the database in chunks and written as
they come, so a month of a busy portal never sits in memory.

Ids and outcomes only, as the tables hold them: no token, key or argument value is in any
of these rows to begin with.
"""

import csv
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator

from asgiref.sync import sync_to_async

from connections.models import AuditEvent
from mcp_gateway.models import ApiKeyEvent
from mcp_gateway.usage import day_bounds, tool_calls

CHUNK = 2000

TOOL_CALL_COLUMNS = [
    "created_at",
    "user",
    "workspace",
    "api_key",
    "connected_app",
    "tool",
    "operation",
    "record_ids",
    "ok",
    "attio_status",
    "error_code",
    "duration_ms",
]
AUDIT_COLUMNS = [
    "created_at",
    "kind",
    "actor",
    "subject",
    "workspace",
    "api_key",
    "connected_app",
    "ip_address",
    "reason",
]


class Echo:
    """A file-like object whose write() returns what it was given (csv.writer's target
    for a streamed response)."""

    def write(self, value: str) -> str:
        return value


# What starts a formula in one spreadsheet or another, after any spaces: the ASCII signs,
# their full-width forms, and a tab or carriage return before them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe(value) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (a user name or a
    revocation reason is free text)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.lstrip(" ")[:1] in FORMULA_STARTS else text


def rows_as_csv(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe(cell) for cell in row])


async def streamed(lines: Iterator[str]) -> AsyncIterator[str]:
    """`lines` for an ASGI response, CHUNK at a time. Django serves a plain iterator under
    ASGI by reading it whole first (StreamingHttpResponse), so a year of tool calls would
    sit in the worker's memory; this reads the rows a chunk per hop to the ORM's thread."""
    take = sync_to_async(lambda: "".join(itertools.islice(lines, CHUNK)), thread_sensitive=True)
    while chunk := await take():
        yield chunk


def tool_call_rows(start, end) -> Iterator[list]:
    calls = (
        tool_calls(start, end)
        .select_related("owner", "connection", "api_key", "connected_app__client")
        .order_by("created_at", "pk")
    )
    for call in calls.iterator(chunk_size=CHUNK):
        yield [
            call.created_at.isoformat(),
            call.owner.get_username() if call.owner else "",
            call.connection.workspace_name if call.connection else "",
            call.api_key.display_id if call.api_key else "",
            call.connected_app.client_name if call.connected_app else "",
            call.tool,
            call.operation,
            " ".join(call.record_ids or []),
            "true" if call.ok else "false",
            call.attio_status or "",
            call.error_code,
            call.duration_ms,
        ]


def audit_rows(start, end) -> Iterator[list]:
    """Both event tables in time order (merged as they stream)."""
    since, until = day_bounds(start, end)

    def events(model, related):
        rows = model.objects.filter(created_at__gte=since, created_at__lt=until)
        return rows.select_related(*related).order_by("created_at", "pk").iterator(CHUNK)

    connection_events = events(AuditEvent, ["actor", "subject"])
    key_events = events(ApiKeyEvent, ["actor", "subject", "api_key", "connected_app__client"])
    for event in heapq.merge(connection_events, key_events, key=lambda e: e.created_at):
        key = getattr(event, "api_key", None)
        app = getattr(event, "connected_app", None)
        yield [
            event.created_at.isoformat(),
            event.kind,
            event.actor.get_username() if event.actor else "",
            event.subject.get_username() if event.subject else "",
            event.workspace_name,
            key.display_id if key else "",
            app.client_name if app else "",
            event.ip_address or "",
            event.reason,
        ]

"""Bulk writes: create-or-update many records, or add many records to a list, in one call.

Each previews first (tools/_confirm.py): per item, whether it would create or update
which record (or add which record), and what it can't do; confirmed, it writes the items
one by one, at most WRITES_PER_SECOND in a workspace (`pacer`), and answers with one
result per item. An item that fails does not stop the others or fail the call.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from django.conf import settings
from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from connections import attio

from ..auth import Caller
from . import _confirm, tool
from ._arguments import AttributeKey, ListSlug, ObjectSlug, RecordId, Values, values_for_attio
from ._call import ToolFailure, call_attio, call_with_slug_help
from ._confirm import Confirm, Preview
from ._results import display_name, id_part

# Items per call, at most.
MAX_ITEMS = 50
# Attio allows 25 writes a second per workspace, across every app and token; the bulk calls
# in one workspace keep to less than half of that (`pacer`, shared by the worker
# processes), so other tools still get through.
WRITES_PER_SECOND = 10
# Reads in flight at once while a preview is made or checked (Attio allows 100 a second).
READS_AT_ONCE = 4
# Failures of the connection, not of one item: a preview ends with them.
CONNECTION_FAILURES = {"needs_reconnect", "not_connected", "revoked_by_admin"}

logger = logging.getLogger(__name__)


class BulkItem(BaseModel):
    index: int = Field(description="The item's position in the call, from 0")
    action: str = Field(description="create, update or add; skip when it can't be done")
    ok: bool | None = Field(description="Whether it was written; null in a preview")
    id: str | None = Field(description="The record's id (entry's, once added to a list)")
    name: str | None = None
    error: str | None = None


class BulkResult(BaseModel):
    done: bool = Field(description="false: only a preview, nothing was written yet")
    items: list[BulkItem]
    written: int
    failed: int
    preview: Preview | None = None


@dataclass
class Planned:
    """One item as its preview shows it, with what must not change before it is written."""

    index: int
    action: str
    id: str | None = None
    name: str | None = None
    error: str | None = None
    state: Any = None
    notes: list[str] = field(default_factory=list)

    def shown(self) -> BulkItem:
        return BulkItem(
            index=self.index,
            action=self.action,
            ok=None,
            id=self.id,
            name=self.name,
            error=self.error,
        )


async def each_with_a_few_at_once(calls: Iterable[Callable[[], Awaitable[Planned]]]) -> list:
    """Run the calls READS_AT_ONCE at a time; their results in order."""
    room = asyncio.Semaphore(READS_AT_ONCE)

    async def run(call):
        async with room:
            return await call()

    tasks = [asyncio.ensure_future(run(c)) for c in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        # One failed for the whole call (a connection to reconnect): the rest stop too,
        # rather than go on calling Attio after the answer.
        for task in tasks:
            task.cancel()
        raise


class WorkspacePacer:
    """Lets at most `per_second` bulk writes start a second in each workspace, across all
    the bulk calls this worker process serves: two bulk calls in one workspace (two users,
    or one user's two clients) share its pace rather than each taking it whole.

    Each write books its workspace's next free slot before it waits for it, so calls that
    wait at once still get slots one interval apart. Workspaces whose last slot is past
    are forgotten once more than MAX_WORKSPACES are held.
    """

    MAX_WORKSPACES = 10_000

    def __init__(self, per_second: float, clock=time.monotonic) -> None:
        self.interval = 1 / per_second
        self.clock = clock
        self.next_free: dict[str, float] = {}

    def book(self, workspace_id: str) -> float:
        """The time (of `clock`) of the workspace's next free slot, now taken."""
        now = self.clock()
        slot = max(now, self.next_free.get(workspace_id, now))
        self.next_free[workspace_id] = slot + self.interval
        if len(self.next_free) > self.MAX_WORKSPACES:
            self.next_free = {ws: t for ws, t in self.next_free.items() if t > now}
        return slot

    async def wait(self, workspace_id: str) -> None:
        delay = self.book(workspace_id) - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)


# Every bulk call of this process, at its share of WRITES_PER_SECOND: each worker process
# paces on its own, so together (settings.PORTAL_WORKERS) they keep to it in a workspace.
pacer = WorkspacePacer(WRITES_PER_SECOND / settings.PORTAL_WORKERS)


async def write_all(
    caller: Caller,
    ctx: Context,
    planned: list[Planned],
    write: Callable[[Planned], Awaitable[str]],
) -> BulkResult:
    """Write the planned items that can be, paced, reporting progress if the client asked;
    `write` returns the id written or raises ToolFailure. Notes the ids in the audit row."""
    results = []
    for number, item in enumerate(planned, start=1):
        result = item.shown()
        result.ok = False
        if item.error is None:
            await pacer.wait(caller.connection.workspace_id)
            try:
                result.id = await write(item)
            except ToolFailure as failure:
                result.error = str(failure)
            except Exception:
                # Not one of Attio's refusals (those are ToolFailures): still this item's
                # alone, so the items after it are written and every item is answered.
                logger.exception("Bulk write of item %d failed unexpectedly", item.index)
                result.error = "unexpected failure; check this item in Attio"
            else:
                result.ok = True
                caller.outcome.record_ids.append(result.id)
        results.append(result)
        await ctx.report_progress(number, len(planned))
    written = sum(1 for r in results if r.ok)
    failed = len(results) - written
    if failed:
        # Audited with the call (policy.py): the error rate counts a bulk write that failed.
        caller.outcome.error_code = "partial_failure" if written else "all_failed"
    return BulkResult(done=True, items=results, written=written, failed=failed)


def previewed(confirmation: _confirm.Confirmation, planned: list[Planned], summary: str):
    """The preview's answer, or None when the call is confirmed and nothing changed."""
    reading = _confirm.Reading(
        state=[(p.index, p.action, p.id, p.state) for p in planned],
        changes=[summary, *(note for p in planned for note in p.notes)],
    )
    preview = confirmation.preview_unless_confirmed(reading)
    if preview is None:
        return None
    skipped = sum(1 for p in planned if p.error)
    return BulkResult(
        done=False,
        items=[p.shown() for p in planned],
        written=0,
        failed=skipped,
        preview=preview,
    )


def counted(planned: list[Planned], action: str) -> int:
    return sum(1 for p in planned if p.action == action)


# --- Records ------------------------------------------------------------------------------


def matching_filter(attribute: str, given: Any) -> dict:
    """An Attio filter for the records whose `attribute` has any of the `given` values
    (as written: "ada@example.com", or {"email_address": "ada@example.com"})."""
    conditions = [
        {attribute: {name: {"$eq": v} for name, v in value.items()}}
        if isinstance(value, dict)
        else {attribute: value}
        for value in (given if isinstance(given, list) else [given])
    ]
    return conditions[0] if len(conditions) == 1 else {"$or": conditions}


def is_empty(value: Any) -> bool:
    return value in (None, "", [], {})


async def plan_upsert(
    caller: Caller, object: str, matching_attribute: str, records: list[dict]
) -> list[Planned]:
    # The first item with each matching value: a later one would update what that one
    # wrote, not what the preview showed, so it is skipped. Values are compared as Attio
    # matches them: one or a list, any case ("acme.com" and ["Acme.com"] are one record).
    first: dict[str, int] = {}
    for index, values in enumerate(records):
        for key in match_keys(values.get(matching_attribute)):
            first.setdefault(key, index)

    async def plan(index: int, values: dict) -> Planned:
        given = values.get(matching_attribute)
        if is_empty(given):
            return Planned(
                index,
                "skip",
                error=f"no value for `{matching_attribute}`, the attribute to match on",
            )
        earlier = min(first[key] for key in match_keys(given))
        if earlier != index:
            return Planned(
                index,
                "skip",
                error=f"matches on the same `{matching_attribute}` as item {earlier}",
            )
        try:
            found = await call_with_slug_help(
                caller,
                "objects",
                object,
                attio.aquery_records,
                object,
                write=False,
                filter=matching_filter(matching_attribute, given),
                sorts=[],
                limit=2,
                offset=0,
            )
        except ToolFailure as failure:
            if failure.code in CONNECTION_FAILURES:
                raise
            return Planned(index, "skip", error=str(failure))
        if len(found) > 1:
            return Planned(
                index, "skip", error=f"more than one record matches its `{matching_attribute}`"
            )
        if not found:
            return Planned(index, "create", state=None)
        record_id = id_part(found[0], "record_id")
        values_now = found[0].get("values") or {}
        name = display_name(values_now)
        return Planned(index, "update", id=record_id, name=name, state=values_now)

    planned = await each_with_a_few_at_once(
        [lambda i=i, v=v: plan(i, v) for i, v in enumerate(records)]
    )
    # Different values that find the same record (an email and a second email of one
    # person): only the first item updates it.
    updating: dict[str, int] = {}
    for item in planned:
        if item.action == "update" and item.id is not None:
            earlier = updating.setdefault(item.id, item.index)
            if earlier != item.index:
                item.action, item.error = "skip", f"finds the same record as item {earlier}"
    return planned


def match_keys(value: Any) -> set[str]:
    """The values of a matching attribute as Attio compares them: each of a list, a
    value object's own values, in lower case."""
    if is_empty(value):
        return set()
    values = value if isinstance(value, list) else [value]
    keys = set()
    for one in values:
        parts = one.values() if isinstance(one, dict) else [one]
        keys.add(_confirm.canonical([str(p).strip().lower() for p in parts]))
    return keys


@tool(title="Create or update many records", read_only=False, destructive=True, idempotent=True)
async def bulk_upsert_records(
    caller: Caller,
    ctx: Context,
    object: ObjectSlug,
    matching_attribute: Annotated[
        AttributeKey, Field(description="Unique attribute in every item")
    ],
    records: Annotated[
        list[Values], Field(min_length=1, max_length=MAX_ITEMS, description="Each record's values")
    ],
    confirm: Confirm = None,
) -> BulkResult:
    """`upsert_record` for up to 50 records. Previews first: show the user, then
    `confirm`."""
    arguments = {"object": object, "matching_attribute": matching_attribute, "records": records}
    confirmation = _confirm.check(caller, "bulk_upsert_records", arguments, confirm)
    planned = await plan_upsert(caller, object, matching_attribute, records)
    summary = (
        f"In `{object}`, matching on `{matching_attribute}`: creates {counted(planned, 'create')}"
        f" record(s), updates {counted(planned, 'update')}, skips {counted(planned, 'skip')}."
    )
    if answer := previewed(confirmation, planned, summary):
        return answer

    async def write(item: Planned) -> str:
        record = await call_with_slug_help(
            caller,
            "objects",
            object,
            attio.aassert_record,
            object,
            matching_attribute,
            values_for_attio(records[item.index]),
            write=True,
        )
        return id_part(record, "record_id")

    return await write_all(caller, ctx, planned, write)


# --- List entries -------------------------------------------------------------------------


class NewEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent_object: ObjectSlug
    parent_record_id: RecordId
    entry_values: Annotated[
        dict[AttributeKey, Any],
        Field(max_length=200, description="The list's own values by slug"),
    ] = {}


def in_list(entry: dict, list: str) -> bool:
    return list in (entry.get("list_api_slug"), entry.get("list_id"))


async def plan_entries(caller: Caller, list: str, entries: list[NewEntry]) -> list[Planned]:
    async def plan(index: int, entry: NewEntry) -> Planned:
        object, record_id = entry.parent_object, entry.parent_record_id
        try:
            record = await call_attio(caller, attio.aget_record, object, record_id)
            held = await call_attio(
                caller, attio.alist_record_entries, object, record_id, limit=500, offset=0
            )
        except ToolFailure as failure:
            if failure.code in CONNECTION_FAILURES:
                raise
            return Planned(index, "skip", id=record_id, error=str(failure))
        already = sorted(str(e.get("entry_id")) for e in held if in_list(e, list))
        name = display_name(record.get("values") or {})
        planned = Planned(index, "add", id=record_id, name=name, state=already)
        if already:
            planned.notes.append(
                f"Item {index} ({name or record_id}) is in `{list}` already "
                f"({len(already)} entry): it would be added again."
            )
        return planned

    return await each_with_a_few_at_once(
        [lambda i=i, e=e: plan(i, e) for i, e in enumerate(entries)]
    )


@tool(title="Add many records to a list", read_only=False)
async def bulk_add_to_list(
    caller: Caller,
    ctx: Context,
    list: ListSlug,
    entries: Annotated[
        list[NewEntry],
        Field(min_length=1, max_length=MAX_ITEMS, description="Records to add"),
    ],
    confirm: Confirm = None,
) -> BulkResult:
    """`add_to_list` for up to 50 records. Previews first: show the user, then
    `confirm`."""
    arguments = {"list": list, "entries": [e.model_dump() for e in entries]}
    confirmation = _confirm.check(caller, "bulk_add_to_list", arguments, confirm)
    planned = await plan_entries(caller, list, entries)
    summary = (
        f"Adds {counted(planned, 'add')} record(s) to the list `{list}`; skips "
        f"{counted(planned, 'skip')}."
    )
    if answer := previewed(confirmation, planned, summary):
        return answer

    async def write(item: Planned) -> str:
        entry = entries[item.index]
        added = await call_with_slug_help(
            caller,
            "lists",
            list,
            attio.acreate_entry,
            list,
            entry.parent_object,
            entry.parent_record_id,
            values_for_attio(entry.entry_values),
            write=True,
        )
        return id_part(added, "entry_id")

    return await write_all(caller, ctx, planned, write)

"""Who may call what, per API key or connected app: the tools it sees and may call
(read-only ones see only reads, compact ones only the compact set, and no more than the
owner's tool policies allow), its rate limit, and the audit trail of every tool call.

The SDK runs `middleware` around each MCP message once the key is verified (auth.py); a
tool call that passes goes on to its tool (tools/).
"""

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, transaction
from mcp.types import CallToolResult, TextContent

from connections.models import Connection

from . import auth, oauth_server, tools
from .models import ApiKey, ConnectedApp, ToolCall

User = get_user_model()

logger = logging.getLogger(__name__)


async def middleware(ctx, call_next):
    """Per-key policy around every MCP request: tool visibility, limits, audit."""
    if ctx.method == "tools/list":
        result = await call_next(ctx)
        caller = auth.current_caller()
        result["tools"] = [t for t in result.get("tools", []) if may_see(caller, t.get("name"))]
        return result
    if ctx.method != "tools/call":
        return await call_next(ctx)

    caller = auth.current_caller()
    name = storable(str((ctx.params or {}).get("name", "")), 64)
    started = time.monotonic()
    error_code = ""
    # The policies first: the other refusals suggest ways to the tool (a key with the
    # full profile, read and write access) that a policy would close.
    if tools.exists(name) and not in_tool_policy(caller, name):
        error_code = "not_in_policy"
        result = error_result(tool_policy_refusal(caller, name))
    elif tools.exists(name) and not tools.in_profile(name, caller.tool_profile):
        error_code = "not_in_profile"
        result = error_result(profile_refusal(caller, name))
    elif caller.read_only and tools.exists(name) and not open_to_read_only(name):
        error_code = "read_only_key" if caller.key is not None else "insufficient_scope"
        result = error_result(read_only_refusal(caller, name))
    elif wait := rate_limiter.retry_after(caller.bucket, settings.MCP_RATE_LIMIT_PER_MINUTE):
        error_code = "rate_limited"
        credential = "API key" if caller.key is not None else "connected app"
        result = error_result(
            f"Too many calls with this {credential} (limit: "
            f"{settings.MCP_RATE_LIMIT_PER_MINUTE} a minute). Wait {wait:.0f} seconds and "
            "try again."
        )
    else:
        try:
            result = await call_next(ctx)
        except asyncio.CancelledError:
            # The call was stopped part way: its client went away from an event stream
            # (which cancels the call; a JSON answer lets it finish) or the worker is
            # shutting down. What it did so far (a bulk write's first items) is audited.
            audit(caller, name, ok=False, error_code="cancelled", started=started)
            raise
        if result.get("isError"):
            error_code = caller.outcome.error_code or "tool_error"
        else:
            # A call that answered may still say what failed within it (a bulk write's
            # items): the row is ok, with the code.
            error_code = caller.outcome.error_code
    audit(caller, name, ok=not result.get("isError", False), error_code=error_code, started=started)
    return result


def audit(caller: auth.Caller, name: str, *, ok: bool, error_code: str, started: float) -> None:
    """The audit row of one tool call or resource read (`name`), ended now."""
    audit_trail.add(
        owner_id=caller.user.pk,
        api_key_id=caller.key.pk if caller.key is not None else None,
        connected_app_id=caller.app.pk if caller.app is not None else None,
        connection_id=caller.connection.pk,
        tool=name,
        operation=storable(caller.outcome.operation, 128),
        record_ids=caller.outcome.record_ids[:1000],
        ok=ok,
        attio_status=caller.outcome.attio_status,
        error_code=storable(error_code, 64),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def may_see(caller: auth.Caller, name: str | None) -> bool:
    """Whether tools/list shows the tool to the caller: its scope, profile and policy."""
    return (
        (not caller.read_only or open_to_read_only(name))
        and tools.in_profile(name, caller.tool_profile)
        and in_tool_policy(caller, name)
    )


def in_tool_policy(caller: auth.Caller, name: str | None) -> bool:
    """Whether the owner's tool policies (models.ToolPolicy) allow the tool; every tool
    if none applies to them. "Every read tool" takes in `attio_request`, which then
    only reads (`policy_allows_api_writes`)."""
    access = caller.tool_access
    if access is None:
        return True
    return name in access.tools or (access.all_read_tools and open_to_read_only(name))


def policy_allows_api_writes(caller: auth.Caller) -> bool:
    """Whether `attio_request` may write for the caller, as far as the tool policies go:
    only where a policy lists it by name. (Any write tool listed beside it would
    otherwise be a way around every write tool left out.)"""
    access = caller.tool_access
    return access is None or "attio_request" in access.tools


def policy_allows_writes(caller: auth.Caller) -> bool:
    """Whether the owner's tool policies allow any tool that writes."""
    if policy_allows_api_writes(caller):
        return True
    return any(
        tools.exists(name) and not open_to_read_only(name) for name in caller.tool_access.tools
    )


def tool_policy_refusal(caller: auth.Caller, name: str) -> str:
    """The words for a tool the owner's tool policies leave out, naming them."""
    return f"`{name}` is left out by {policies_named(caller)}. {ASK_AN_ADMIN}"


ASK_AN_ADMIN = "The portal's admins set tool policies; ask one of them if you need it."


def policies_named(caller: auth.Caller) -> str:
    """`your tool policy "Sales"`, or `your tool policies "Sales" and "Support"`."""
    access = caller.tool_access
    noun = "policy" if len(access.policies) == 1 else "policies"
    return f"your tool {noun} {access.named}"


def open_to_read_only(name: str | None) -> bool:
    """Whether read-only callers see and may call the tool: the read tools, and
    `attio_request`, a write tool that serves their reads and refuses their writes itself
    (tools/api.py)."""
    return tools.is_read_only(name) or name == "attio_request"


def profile_refusal(caller: auth.Caller, name: str) -> str:
    """The words for a tool outside the caller's tool profile (compact), which the
    owner's policies allow (checked first)."""
    if caller.key is not None:
        left_out = f"This API key has the compact tool profile, which leaves out `{name}`."
        full = f"create a key with the full profile at {settings.PORTAL_BASE_URL}/ to call it."
    else:
        left_out = (
            f"This app was connected with the compact tool profile, which leaves out `{name}`."
        )
        full = "connect the app again and choose the full profile to call it."
    if attio_request_could_serve(caller, name):
        return (
            f"{left_out} `attio_request` reaches the same Attio operation "
            f"(`find_attio_operation` finds it), or {full}"
        )
    return f"{left_out} {full[0].upper()}{full[1:]}"


def attio_request_could_serve(caller: auth.Caller, name: str) -> bool:
    """Whether `attio_request` could do, for the caller, what tool `name` does."""
    if not in_tool_policy(caller, "attio_request"):
        return False
    return tools.is_read_only(name) or (not caller.read_only and policy_allows_api_writes(caller))


def read_only_refusal(caller: auth.Caller, name: str) -> str:
    """The words for a write tool called read-only. An OAuth client is also answered 403
    `insufficient_scope` (http.py), so it can ask the user for write access."""
    if caller.key is not None:
        return (
            f"This API key is read-only, so it cannot call `{name}`. Create a "
            f"read-write key at {settings.PORTAL_BASE_URL}/ to make changes."
        )
    refusal = auth.refusal.get()
    if refusal is not None:
        refusal.insufficient_scope = oauth_server.ALL_SCOPES
    return (
        f"This app was given read-only access, so it cannot call `{name}`. Connect it "
        "again and choose read and write to make changes."
    )


def error_result(text: str) -> dict:
    """A tool error as the SDK puts it on the wire (clients validate the exact shape)."""
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def storable(text: str, limit: int) -> str:
    """`text` as a text column can hold it: at most `limit` characters and no NUL, which
    JSON can carry and PostgreSQL refuses. (The SDK's parser already refuses lone
    surrogates, the other thing a UTF-8 column can't hold.)"""
    return text.replace("\x00", "")[:limit]


class RateLimiter:
    """Events per bucket in the last minute (a sliding window), counted in this worker
    process only: each web worker process keeps its own counts, so with N workers a
    client may get up to N times the limit.

    A bucket is what is counted: an API key's or connected app's bucket for tool calls
    (policy), a client address for authentication failures (http.py).

    At most MAX_BUCKETS windows are kept, in the order they were last recorded in; past
    that the least recently recorded one is dropped, so memory stays bounded and a
    request costs O(1) amortised. (Scanning every window for stale ones once past the cap
    cost ~7 ms per failed request at 20-50k addresses: bench/limiter.py.) A dropped
    window is one nothing was recorded in while MAX_BUCKETS others were, so a client that
    starts afresh that way had as many addresses, keys or apps to spend anyway.
    """

    MAX_BUCKETS = 10_000

    def __init__(self) -> None:
        self.windows: OrderedDict[int | str, deque[float]] = OrderedDict()

    def _recent(self, bucket: int | str, now: float) -> deque[float] | None:
        """The bucket's window without the events older than a minute; None if it has none."""
        window = self.windows.get(bucket)
        if window is not None:
            while window and window[0] <= now - 60:
                window.popleft()
            # Looked at is in use: a bucket held at its limit (whose requests are refused,
            # so not recorded) must not drift to the front and be the first dropped.
            self.windows.move_to_end(bucket)
        return window

    def retry_after(self, bucket: int | str, limit: int) -> float | None:
        """None if the call may go ahead (and counts it), else the seconds until it may."""
        now = time.monotonic()
        window = self._recent(bucket, now)
        if window is not None and len(window) >= limit:
            return 60 - (now - window[0])
        self._record(bucket, now)
        return None

    def exceeded(self, bucket: int | str, limit: int) -> bool:
        """Whether `limit` events were recorded in the last minute; records nothing."""
        window = self._recent(bucket, time.monotonic())
        return window is not None and len(window) >= limit

    def record(self, bucket: int | str) -> None:
        self._record(bucket, time.monotonic())

    def _record(self, bucket: int | str, now: float) -> None:
        window = self._recent(bucket, now)
        if window is None:
            window = self.windows[bucket] = deque()
            if len(self.windows) > self.MAX_BUCKETS:
                self.windows.popitem(last=False)
        else:
            self.windows.move_to_end(bucket)
        window.append(now)


rate_limiter = RateLimiter()


class AuditTrail:
    """The ToolCall rows of this worker, written in batches off the request path.

    One INSERT per call, awaited before answering, cost each call a thread hop, the ORM's
    save() and a commit waiting for the WAL flush: ~0.8 ms of CPU per call, and more of
    its latency when the disk is busy (bench/README.md, "Gateway"). Rows now wait here, in
    call order, and a background task writes them with one bulk INSERT every FLUSH_SECONDS.

    Still one row per tool call. Nothing is lost on a normal shutdown: the server's
    lifespan (uvicorn's, on SIGTERM; or the end of `session_manager.run()`) writes every
    pending row before it ends. If the worker dies without one (SIGKILL, OOM kill, power
    loss), the rows not yet written are lost: those of the last FLUSH_SECONDS, plus a
    write in progress (~0.5 s of calls at most). A write that fails (the database away)
    keeps its rows, in order, for the next attempt; a row the database refuses is written
    on its own, without its links if their rows were deleted, or dropped and logged.
    """

    FLUSH_SECONDS = 0.25
    BATCH = 500

    def __init__(self) -> None:
        self.pending: list[ToolCall] = []

    def add(self, **fields) -> None:
        # created_at is set now, when the call ends, as before.
        self.pending.append(ToolCall(**fields))

    async def flush(self) -> None:
        """Write the rows pending now; rows added meanwhile wait for the next flush.

        (Looping until none are pending would, under steady traffic, write a row or two
        per INSERT, one after the other: the per-call cost this class exists to avoid.)
        """
        rows, self.pending = self.pending, []
        if not rows:
            return
        try:
            await sync_to_async(self.write)(rows)
        except BaseException:
            # Not written (the database away): keep them, in order, for the next flush.
            self.pending[:0] = rows
            raise

    def write(self, rows: list[ToolCall]) -> None:
        auth.close_stale_database_connections()  # no request cycle does it here
        try:
            with transaction.atomic():
                ToolCall.objects.bulk_create(rows, batch_size=self.BATCH)
        except (DataError, IntegrityError):
            # A row the database refuses would hold back every row after it, at every
            # retry: write them one by one instead. (A lost connection is an
            # OperationalError and is retried whole.)
            for index, row in enumerate(rows):
                try:
                    self.write_one(row)
                except BaseException:
                    del rows[:index]  # written already: flush() keeps only the rest
                    raise

    def write_one(self, row: ToolCall) -> None:
        """Write one row; one the database refuses for good is dropped and logged."""
        try:
            self.insert(row)
        except IntegrityError:
            # Its key, app, user or connection may have been deleted since the call: keep the
            # record without the link, as the foreign keys' SET_NULL would have.
            for field, model in (
                ("owner_id", User),
                ("api_key_id", ApiKey),
                ("connected_app_id", ConnectedApp),
                ("connection_id", Connection),
            ):
                linked = getattr(row, field)
                if linked is not None and not model.objects.filter(pk=linked).exists():
                    setattr(row, field, None)
            try:
                self.insert(row)
            except (DataError, IntegrityError):
                self.drop(row)
        except DataError:
            self.drop(row)

    @staticmethod
    def insert(row: ToolCall) -> None:
        # An INSERT rolled back (the batch's, or the row's own) may have left its pk set.
        row.pk = None
        row._state.adding = True
        with transaction.atomic():
            row.save(force_insert=True)

    @staticmethod
    def drop(row: ToolCall) -> None:
        logger.error("Dropped a tool call record the database refused (tool %r)", row.tool)

    async def _flush_every_interval(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                logger.exception(
                    "Could not write %d tool call records; retrying", len(self.pending)
                )

    @contextlib.asynccontextmanager
    async def running(self):
        """Flush in the background while the server runs, and everything at the end."""
        stop = asyncio.Event()
        flusher = asyncio.create_task(self._flush_every_interval(stop))
        try:
            yield
        finally:
            stop.set()
            await flusher  # ends after its current write; never cancelled mid-write
            try:
                while self.pending:
                    await self.flush()
            except Exception:
                logger.exception("Lost %d tool call records at shutdown", len(self.pending))
                raise


audit_trail = AuditTrail()

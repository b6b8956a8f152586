"""Usage at a glance, from the audit trail: tool calls per day by user, tool and workspace,
the error rate and the calls' p50/p95 duration, for a range of days.

Days that are over are read from their roll-up (ToolCallDay, ToolCallDuration), made once
by `roll_up` (beat, hourly); the rest (today, or days beat has not rolled up yet) from the
tool-call rows themselves. Every query aggregates in SQL: bench/usage.py measures the page
on a million rows, where reading the rows for 90 days took ~3 s and the roll-ups ~0.3 s.

Durations are whole calls as the gateway timed them (ToolCall.duration_ms): Attio's
latency plus the portal's few milliseconds. They are counted in buckets 2 % wide, so p50
and p95 are within 2 % of the exact figures, the same for every day however it is read.
"""

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection as database
from django.db import transaction
from django.db.models import Count, F, FloatField, Q, QuerySet, Sum
from django.db.models.functions import Cast, Floor, Ln, TruncDate
from django.utils import timezone

from connections.models import Connection

from .models import RolledUpDay, ToolCall, ToolCallDay, ToolCallDuration

# Series drawn per breakdown; the rest are added up as "others".
TOP = 8
# A bucket holds durations d with floor(ln(d + 1) / ln(BUCKET_RATIO)) equal.
BUCKET_RATIO = 1.02
# A day is rolled up this long after it ends: the audit trail writes its rows a moment
# after each call, and a worker that was busy may be a little later still.
SETTLE = timedelta(minutes=10)
# Days rolled up again at each run, before the last one rolled up.
REDO_DAYS = 2
# The advisory lock a roll-up holds (any number no other code of the portal uses).
ROLL_UP_LOCK = 715_001


@dataclass
class Series:
    label: str
    total: int
    per_day: list[int]


@dataclass
class Usage:
    start: date
    end: date  # inclusive
    days: list[date]
    calls: list[int]
    errors: list[int]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    p50_all: float | None = None
    p95_all: float | None = None
    by_user: list[Series] = field(default_factory=list)
    by_tool: list[Series] = field(default_factory=list)
    by_workspace: list[Series] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)

    @property
    def error_rate(self) -> float | None:
        return self.total_errors / self.total_calls if self.total_calls else None

    @property
    def error_percent(self) -> str:
        rate = self.error_rate
        return "" if rate is None else f"{rate * 100:.1f} %"

    def chart_data(self) -> dict:
        """What the page's charts draw (json_script): days as Unix seconds, series by name."""
        seconds = [int(datetime.combine(d, time(), UTC).timestamp()) for d in self.days]
        return {
            "days": seconds,
            "calls": self.calls,
            "error_rate": [
                e / c if c else None for c, e in zip(self.calls, self.errors, strict=True)
            ],
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "by_user": [asdict(s) for s in self.by_user],
            "by_tool": [asdict(s) for s in self.by_tool],
            "by_workspace": [asdict(s) for s in self.by_workspace],
        }


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The first moment of `start` and the first after `end`, in UTC."""
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


def tool_calls(start: date, end: date, owner=None) -> QuerySet:
    """The tool-call rows of the days start to end (UTC, inclusive)."""
    since, until = day_bounds(start, end)
    calls = ToolCall.objects.filter(created_at__gte=since, created_at__lt=until)
    return calls.filter(owner=owner) if owner is not None else calls


def bucket_of_duration():
    """The duration bucket of a tool-call row, in SQL (Django gives SQLite LN and FLOOR)."""
    ms = Cast(F("duration_ms") + 1, FloatField())
    return Floor(Ln(ms) / math.log(BUCKET_RATIO))


# --- Reading -------------------------------------------------------------------------------


def usage(start: date, end: date, *, owner=None) -> Usage:
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    rolled = set(
        RolledUpDay.objects.filter(day__gte=start, day__lte=end).values_list("day", flat=True)
    )
    live = [d for d in days if d not in rolled]

    # (day, owner_id, connection_id, tool, calls, errors) and (day, bucket, calls) rows,
    # from the roll-ups and from the rows of the days not rolled up.
    summed = ToolCallDay.objects.filter(day__in=rolled)
    durations = ToolCallDuration.objects.filter(day__in=rolled)
    if owner is not None:
        summed = summed.filter(owner=owner)
    counts = {
        by: list(summed.values("day", key=F(by)).annotate(n=Sum("calls"), e=Sum("errors")))
        for by in ("owner_id", "connection_id", "tool")
    }
    per_bucket = list(durations.values("day", "bucket").annotate(n=Sum("calls")))
    for first, last in runs(live):
        rows = tool_calls(first, last, owner).annotate(day=TruncDate("created_at", tzinfo=UTC))
        for by in counts:
            counts[by] += rows.values("day", key=F(by)).annotate(
                n=Count("id"), e=Count("id", filter=Q(ok=False))
            )
        per_bucket += rows.values("day", bucket=bucket_of_duration()).annotate(n=Count("id"))
    if owner is not None:
        # Durations are rolled up for everyone together, not per user: a user's own are
        # read from their rows (indexed by owner and time).
        rows = tool_calls(start, end, owner).annotate(day=TruncDate("created_at", tzinfo=UTC))
        per_bucket = list(rows.values("day", bucket=bucket_of_duration()).annotate(n=Count("id")))

    index = {day: n for n, day in enumerate(days)}
    calls, errors = [0] * len(days), [0] * len(days)
    for row in counts["tool"]:
        calls[index[row["day"]]] += row["n"]
        errors[index[row["day"]]] += row["e"]
    histograms: list[dict[int, int]] = [{} for _ in days]
    for row in per_bucket:
        histogram = histograms[index[row["day"]]]
        histogram[int(row["bucket"])] = histogram.get(int(row["bucket"]), 0) + row["n"]
    everything: dict[int, int] = {}
    for histogram in histograms:
        for bucket, n in histogram.items():
            everything[bucket] = everything.get(bucket, 0) + n

    User = get_user_model()
    return Usage(
        start=start,
        end=end,
        days=days,
        calls=calls,
        errors=errors,
        p50_ms=[percentile(h, 0.5) for h in histograms],
        p95_ms=[percentile(h, 0.95) for h in histograms],
        p50_all=percentile(everything, 0.5),
        p95_all=percentile(everything, 0.95),
        by_user=breakdown(
            counts["owner_id"],
            index,
            names(User.objects, "username"),
            unnamed="(deleted user)",
        ),
        by_tool=breakdown(counts["tool"], index, None, unnamed="(none)"),
        by_workspace=breakdown(
            counts["connection_id"],
            index,
            names(Connection.objects, "workspace_name"),
            unnamed="(deleted connection)",
        ),
    )


def runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) pairs, so each run is one range of rows."""
    found: list[tuple[date, date]] = []
    for day in days:
        if found and found[-1][1] + timedelta(days=1) == day:
            found[-1] = (found[-1][0], day)
        else:
            found.append((day, day))
    return found


def names(objects, field_name: str):
    """A function that names a set of ids in one query."""

    def lookup(ids: set) -> dict:
        return dict(objects.filter(pk__in=ids).values_list("pk", field_name))

    return lookup


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """The duration (ms) below which `fraction` of the calls fall, as percentile_cont
    reads sorted values, each call's value being its bucket's middle."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = fraction * (total - 1)
    low, high = nth(histogram, math.floor(rank)), nth(histogram, math.ceil(rank))
    return low + (high - low) * (rank - math.floor(rank))


def nth(histogram: dict[int, int], k: int) -> float:
    """The value of the k-th call (from 0) in duration order."""
    seen = 0
    for bucket, count in sorted(histogram.items()):
        seen += count
        if k < seen:
            return middle(bucket)
    raise IndexError(k)


def middle(bucket: int) -> float:
    """The middle of a bucket's durations (geometric, as the buckets are)."""
    return BUCKET_RATIO ** (bucket + 0.5) - 1


def breakdown(rows: list[dict], index: dict[date, int], naming, *, unnamed: str) -> list[Series]:
    """Calls per day of the TOP keys (ids named by `naming`, or names), then the rest as one
    "others" series."""
    per_key: dict = {}
    for row in rows:
        per_day = per_key.setdefault(row["key"], [0] * len(index))
        per_day[index[row["day"]]] += row["n"]
    named = naming({k for k in per_key if k is not None}) if naming else {}
    series: dict[str, Series] = {}
    for key, per_day in per_key.items():
        label = named.get(key, key) if naming else key
        label = str(label) if label not in (None, "") else unnamed
        found = series.setdefault(label, Series(label, 0, [0] * len(index)))
        found.per_day = [a + b for a, b in zip(found.per_day, per_day, strict=True)]
        found.total = sum(found.per_day)
    ranked = sorted(series.values(), key=lambda s: (-s.total, s.label))
    top, rest = ranked[:TOP], ranked[TOP:]
    if rest:
        others = Series(f"{len(rest)} others", 0, [0] * len(index))
        for s in rest:
            others.per_day = [a + b for a, b in zip(others.per_day, s.per_day, strict=True)]
        others.total = sum(others.per_day)
        top.append(others)
    return top


# --- Rolling up ------------------------------------------------------------------------------


def roll_up(*, now=None) -> int:
    """Roll up every day that is over (SETTLE after its end) from REDO_DAYS before the
    last one rolled up (or from the first tool call's), so rows the audit trail wrote
    late (it keeps them while the database is away) still count. Returns how many days
    were rolled up. One run at a time: a second one waits for the first."""
    now = now or timezone.now()
    last_over = (now - SETTLE).astimezone(UTC).date() - timedelta(days=1)
    with transaction.atomic():
        one_run_at_a_time()
        latest = RolledUpDay.objects.order_by("-day").values_list("day", flat=True).first()
        if latest is not None:
            day = latest - timedelta(days=REDO_DAYS)
        else:
            first = ToolCall.objects.order_by("created_at").values_list("created_at", flat=True)
            if not first:
                return 0
            day = first[0].astimezone(UTC).date()
        if latest is not None and settings.TOOL_CALL_RETENTION_DAYS > 0:
            # Never again a day whose rows retention may have deleted: its roll-up is all
            # that is left of it. (A day never rolled up is, whatever is left of it.)
            kept_since = now.astimezone(UTC).date() - timedelta(
                days=settings.TOOL_CALL_RETENTION_DAYS - 1
            )
            day = max(day, min(kept_since, latest + timedelta(days=1)))
        rolled = 0
        while day <= last_over:
            roll_up_day(day)
            rolled += 1
            day += timedelta(days=1)
        return rolled


def one_run_at_a_time() -> None:
    """Wait, in this transaction, for any other roll-up to finish (PostgreSQL; SQLite
    writes one transaction at a time anyway)."""
    if database.vendor == "postgresql":
        with database.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLL_UP_LOCK])


def roll_up_day(day: date) -> None:
    """Sum one day's tool calls into its roll-up rows, replacing any it had."""
    rows = tool_calls(day, day)
    with transaction.atomic():
        ToolCallDay.objects.filter(day=day).delete()
        ToolCallDuration.objects.filter(day=day).delete()
        ToolCallDay.objects.bulk_create(
            ToolCallDay(day=day, **row)
            for row in rows.values("owner_id", "connection_id", "tool").annotate(
                calls=Count("id"), errors=Count("id", filter=Q(ok=False))
            )
        )
        ToolCallDuration.objects.bulk_create(
            ToolCallDuration(day=day, bucket=int(row["bucket"]), calls=row["calls"])
            for row in rows.values(bucket=bucket_of_duration()).annotate(calls=Count("id"))
        )
        RolledUpDay.objects.update_or_create(day=day, defaults={"rolled_up_at": timezone.now()})

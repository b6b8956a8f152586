"""Figures from the fake Attio's call log: counts and per-workspace peak rates."""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# Attio's budget per workspace (https://docs.attio.com/rest-api/guides/rate-limiting).
ATTIO_READS_PER_SECOND = 100
ATTIO_WRITES_PER_SECOND = 25


def peak_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window)."""
    return peak_window(times, window)[0]


def peak_window(times: list[float], window: float = 1.0) -> tuple[int, float]:
    """(the most events in any window [t, t + window), the first such t)."""
    times = sorted(times)
    best, at = 0, 0.0
    for i, start in enumerate(times):
        count = bisect.bisect_left(times, start + window, lo=i) - i
        if count > best:
            best, at = count, start
    return best, at


@dataclass
class CallFigures:
    validations: int = 0  # GET /v2/self (a read)
    refreshes: int = 0  # POST /oauth/token grant_type=refresh_token (counted as a write)
    other: int = 0
    not_ok: Counter = field(default_factory=Counter)  # (endpoint, status) -> count
    first: float | None = None
    last: float | None = None
    peak_read: int = 0  # max over workspaces of reads in any 1 s window
    peak_write: int = 0
    peak_read_workspace: str = ""
    peak_write_workspace: str = ""
    peak_read_at: float = 0.0  # seconds after the sweep started
    peak_write_at: float = 0.0
    peak_total: int = 0  # all workspaces together, any 1 s window
    fake_peak_read: int = 0  # the fake's own counter (authenticated /v2 only)
    workspaces_over_budget: int = 0
    workspaces_over_share: int = 0  # above the sweep's own reads/writes per second

    @property
    def total(self) -> int:
        return self.validations + self.refreshes + self.other

    @property
    def span(self) -> float:
        return (self.last - self.first) if self.first is not None else 0.0


def call_figures(
    calls: list[list],
    fake_peaks: dict[str, dict[str, int]],
    since: float,
    shares: tuple[float, float] = (math.inf, math.inf),
) -> CallFigures:
    """``calls`` rows are [arrived (monotonic), endpoint, workspace_id, status]."""
    figures = CallFigures()
    reads: dict[str, list[float]] = defaultdict(list)
    writes: dict[str, list[float]] = defaultdict(list)
    every: list[float] = []
    for arrived, endpoint, workspace, status in calls:
        if arrived < since:
            continue
        every.append(arrived)
        if endpoint == "self":
            figures.validations += 1
            reads[workspace].append(arrived)
        elif endpoint == "refresh":
            figures.refreshes += 1
            writes[workspace].append(arrived)
        else:
            figures.other += 1
        if status != 200:
            figures.not_ok[(endpoint, status)] += 1
    if every:
        figures.first, figures.last = min(every), max(every)
        figures.peak_total = peak_in_window(every)
    over, over_share = set(), set()
    busiest = {}
    for kind, per_workspace, budget, share in (
        ("read", reads, ATTIO_READS_PER_SECOND, shares[0]),
        ("write", writes, ATTIO_WRITES_PER_SECOND, shares[1]),
    ):
        best = (0, "", 0.0)  # (peak, workspace, seconds after `since`)
        for workspace, times in per_workspace.items():
            peak, at = peak_window(times)
            if peak > best[0]:
                best = (peak, workspace, at - since)
            if peak > budget:
                over.add(workspace)
            if peak > share:
                over_share.add(workspace)
        busiest[kind] = best
    figures.peak_read, figures.peak_read_workspace, figures.peak_read_at = busiest["read"]
    figures.peak_write, figures.peak_write_workspace, figures.peak_write_at = busiest["write"]
    figures.workspaces_over_budget = len(over)
    figures.workspaces_over_share = len(over_share)
    figures.fake_peak_read = max((p["read"] for p in fake_peaks.values()), default=0)
    return figures

"""Per-workspace request accounting: Attio's rate limits, and proof for benchmarks.

Attio allows 100 read and 25 write requests per second per workspace ("across all
apps and access tokens"), and answers 429 with an HTTP-date ``Retry-After``
beyond that (https://docs.attio.com/rest-api/guides/rate-limiting). The fake records when each
authenticated ``/v2`` request arrived; ``peak_rate`` reports the most requests
seen in any window, and enforcement (off unless asked for) refuses requests over
the limit in a sliding one-second window.

Reads are GET requests and the POST queries and searches (``.../query``,
``/v2/objects/records/search``), which Attio counts as reads; everything else is
a write.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from typing import Literal

RateKind = Literal["read", "write"]

WINDOW = 1.0
DEFAULT_LIMITS: dict[RateKind, int] = {"read": 100, "write": 25}


def rate_kind(method: str, path: str) -> RateKind:
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if method == "POST" and (path.endswith("/query") or path == "/v2/objects/records/search"):
        return "read"
    return "write"


class RateTracker:
    """Arrival times (monotonic seconds) per workspace and kind. Not thread-safe:
    the fake calls it under its lock."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, RateKind], list[float]] = defaultdict(list)
        # Requests let through, for enforcement (a refused request does not use
        # up the budget, so a client that backs off gets through again).
        self._accepted: dict[tuple[str, RateKind], deque[float]] = defaultdict(deque)

    def arrive(
        self,
        workspace_id: str,
        kind: RateKind,
        at: float,
        *,
        limit: int | None,
    ) -> float | None:
        """Record one request. With a ``limit``, returns None if it may go on, or
        the monotonic time at which the window has room again."""
        key = (workspace_id, kind)
        self.arrivals[key].append(at)
        if limit is None:
            return None
        accepted = self._accepted[key]
        while accepted and accepted[0] <= at - WINDOW:
            accepted.popleft()
        if len(accepted) >= limit:
            return accepted[len(accepted) - limit] + WINDOW
        accepted.append(at)
        return None

    def peak(self, workspace_id: str, kind: RateKind, window: float = WINDOW) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(self.arrivals.get((workspace_id, kind), ()))
        best = 0
        for i, start in enumerate(times):
            # Requests in [start, start + window).
            end = bisect.bisect_left(times, start + window, lo=i)
            best = max(best, end - i)
        return best

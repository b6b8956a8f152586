"""The failure limiter's CPU per failed request (one `exceeded()` and one `record()`), with
many distinct client addresses in a minute: the limiter before (copied below) and now.

    .venv/bin/python bench/limiter.py [--addresses 100000] [--sample 200] [--rounds 3]

What http.py does for a request with a wrong key: `exceeded(address)`, then, on the 401,
`record(address)`. Here every request comes from a new address, all within one minute, so
no window is stale: the worst case for both, and what a scan of addresses looks like.

- before: its windows are filled straight into its dict up to each size (`--addresses`,
  and 20,000 / 50,000 to compare with the ~7 ms once measured); then `--sample` requests
  from new addresses are timed. (Filling it through `record()` would take an hour: past
  MAX_BUCKETS, every call scans the whole dict.)
- now: all `--addresses` requests go through `exceeded()` and `record()`, timed as a
  whole; it never keeps more than MAX_BUCKETS windows.

Figures are process CPU time per request, the median of `--rounds` rounds.
"""

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict, deque

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")

import django  # noqa: E402

django.setup()

from mcp_gateway.policy import RateLimiter  # noqa: E402

LIMIT = 30


class RateLimiterBefore:
    """mcp_gateway/policy.py's RateLimiter before the fix (as of commit 08d6829)."""

    MAX_BUCKETS = 10_000

    def __init__(self) -> None:
        self.calls: dict[int | str, deque[float]] = defaultdict(deque)

    def _window(self, bucket, now):
        window = self.calls[bucket]
        while window and window[0] <= now - 60:
            window.popleft()
        return window

    def exceeded(self, bucket, limit) -> bool:
        return len(self._window(bucket, time.monotonic())) >= limit

    def record(self, bucket) -> None:
        now = time.monotonic()
        if len(self.calls) > self.MAX_BUCKETS:
            for stale in [k for k, w in self.calls.items() if not w or w[-1] <= now - 60]:
                del self.calls[stale]
        self.calls[bucket].append(now)


def address(i: int) -> str:
    return f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def failed_requests(limiter, first: int, count: int) -> float:
    """CPU seconds for `count` failed requests from new addresses, starting at `first`."""
    start = time.process_time()
    for i in range(first, first + count):
        bucket = address(i)
        if not limiter.exceeded(bucket, LIMIT):
            limiter.record(bucket)
    return time.process_time() - start


def before_ms(size: int, sample: int) -> tuple[float, int]:
    limiter = RateLimiterBefore()
    now = time.monotonic()
    for i in range(size):
        limiter.calls[address(i)].append(now)
    seconds = failed_requests(limiter, size, sample)
    return seconds / sample * 1000, len(limiter.calls)


def now_ms(count: int) -> tuple[float, int]:
    limiter = RateLimiter()
    seconds = failed_requests(limiter, 0, count)
    return seconds / count * 1000, len(limiter.windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sizes = sorted({20_000, 50_000, args.addresses})
    rows = []
    for size in sizes:
        results = [before_ms(size, args.sample) for _ in range(args.rounds)]
        rows.append((f"before, {size:,} live windows", results))
    results = [now_ms(args.addresses) for _ in range(args.rounds)]
    rows.append((f"now, {args.addresses:,} addresses", results))

    now = statistics.median(ms for ms, _ in results)
    print(f"{'limiter':<34} {'ms CPU/request':>15} {'windows kept':>13} {'vs now':>9}")
    for name, results in rows:
        ms = statistics.median(ms for ms, _ in results)
        kept = results[-1][1]
        print(f"{name:<34} {ms:>15.4f} {kept:>13,} {ms / now:>8.0f}x")


if __name__ == "__main__":
    main()

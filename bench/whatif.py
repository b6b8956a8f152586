"""What-if patches, applied only inside the benchmark process, to measure fixes.

They change nothing on disk. Each stands for a change suggested for the code under
test (see bench/README.md); ``--what-if NAME[,NAME]`` turns them on for a run.

- ``shared-ssl``: ``connections.attio._oauth_client`` builds a new authlib
  ``OAuth2Client`` (an httpx2 client) for every token refresh, and with it a new
  SSL context that loads the whole CA bundle (~25-35 ms of CPU, and more to free
  it), even for a plain-http URL. The patch passes one SSL context, made once, as
  ``verify=``.
- ``keep-db``: ``sweep_connections.process`` closes the worker thread's database
  connection after every connection it handles, so every item opens a new
  PostgreSQL connection (~9 ms and a backend process each). The patch keeps one
  connection per worker thread and closes them when the sweep is over.
- ``clock-after-claim``: the command takes ``started`` before claiming, so every
  offset shorter than the claim is already overdue when the pool starts and those
  calls go out at once. The patch adds the claim's duration to every offset, which
  is the same as starting the clock after the claim (command mode only).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

NAMES = ("shared-ssl", "keep-db", "clock-after-claim")


@contextlib.contextmanager
def applied(names: list[str]) -> Iterator[None]:
    unknown = set(names) - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown --what-if {sorted(unknown)}; choose from {NAMES}")
    with contextlib.ExitStack() as stack:
        if "shared-ssl" in names:
            stack.enter_context(_shared_ssl())
        if "keep-db" in names:
            stack.enter_context(_keep_db())
        if "clock-after-claim" in names:
            stack.enter_context(_clock_after_claim())
        yield


@contextlib.contextmanager
def _shared_ssl() -> Iterator[None]:
    import httpx2

    from connections import attio

    original = attio.OAuth2Client
    context = httpx2.create_ssl_context()

    def client(*args, **kwargs):
        if kwargs.get("transport") is None:
            kwargs.setdefault("verify", context)
        return original(*args, **kwargs)

    attio.OAuth2Client = client
    try:
        yield
    finally:
        attio.OAuth2Client = original


class _KeepConnection:
    """Stands in for django.db.connection in the sweep command: close() keeps it."""

    def __init__(self) -> None:
        self.kept: dict[int, object] = {}
        self.lock = threading.Lock()

    def close(self) -> None:
        from django.db import connections

        wrapper = connections["default"]
        with self.lock:
            self.kept[id(wrapper)] = wrapper

    def close_all(self) -> None:
        for wrapper in self.kept.values():
            wrapper.inc_thread_sharing()
            wrapper.close()
        self.kept.clear()


@contextlib.contextmanager
def _keep_db() -> Iterator[None]:
    from connections.management.commands import sweep_connections as command

    original = command.connection
    keeper = _KeepConnection()
    command.connection = keeper
    try:
        yield
    finally:
        command.connection = original
        keeper.close_all()


@contextlib.contextmanager
def _clock_after_claim() -> Iterator[None]:
    import time

    from connections import services

    original = services.claim_due_connections

    def claim(*args, **kwargs):
        started = time.monotonic()
        items = original(*args, **kwargs)
        took = time.monotonic() - started
        for item in items:
            item.offset += took
        return items

    services.claim_due_connections = claim
    try:
        yield
    finally:
        services.claim_due_connections = original

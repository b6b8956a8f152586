"""Running callers at the same moment, for the tests of concurrency claims (PostgreSQL)."""

import threading

from django.db import connection as db_connection


def run_together(count: int, target) -> list:
    """`target(index)` in `count` threads released at once; their results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int):
        try:
            barrier.wait(timeout=10)
            results[index] = target(index)
        except Exception as e:  # noqa: BLE001 - the caller's assertions look at it
            results[index] = e
        finally:
            db_connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    return results

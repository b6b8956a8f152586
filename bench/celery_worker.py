"""A Celery worker with the benchmark's what-if patches (see bench/whatif.py).

    python -m bench.celery_worker WHAT_IFS worker -P threads --concurrency 32 ...

WHAT_IFS is a comma list: ``shared-ssl`` (one SSL context for every token refresh)
and ``keep-db`` (CELERY_DB_REUSE_MAX, so Celery's Django fixup stops closing the
database connection before and after every task). Without what-ifs the benchmark
runs the plain ``celery -A attio_portal worker`` instead.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> None:
    names = [name for name in sys.argv[1].split(",") if name]
    import django

    django.setup()
    from attio_portal.celery import app
    from bench import whatif

    if "keep-db" in names:
        # Read by celery.fixups.django when the worker starts: close the database
        # connection every N tasks instead of around every task.
        app.conf.update(CELERY_DB_REUSE_MAX=1_000_000)
    patches = contextlib.ExitStack()
    if "shared-ssl" in names:
        patches.enter_context(whatif.applied(["shared-ssl"]))
    with patches:
        app.worker_main(argv=sys.argv[2:])


if __name__ == "__main__":
    main()

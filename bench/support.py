"""What the benchmarks share: their own PostgreSQL database, and the processes they start.

Each script takes `--admin-url` (a database the role can connect to) and `--database`
(the one it creates, uses and drops).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def database_url(args) -> str:
    """The Django DATABASE_URL of the benchmark's own database."""
    return args.admin_url.rsplit("/", 1)[0] + "/" + args.database


def admin_sql(args, sql: str, params: list | None = None):
    """Run one statement through the admin URL, in autocommit (CREATE/DROP DATABASE need
    it); its first row, if it returns any."""
    import psycopg

    url = args.admin_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def recreate_database(args) -> None:
    drop_database(args)
    admin_sql(args, f'CREATE DATABASE "{args.database}"')


def drop_database(args) -> None:
    admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def stop_group(proc: subprocess.Popen | None, grace: float = 15) -> None:
    """Stop a process this script started, and its process group (which it leads)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 (1-based); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

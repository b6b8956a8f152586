"""What the benchmarks share: their own PostgreSQL database, the portal's settings, CPU.

Each script takes `--admin-url` (a database the role can connect to) and `--database`
(the one it creates, uses and drops).
"""

from __future__ import annotations

import os
import secrets
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


def set_up_portal(args, **settings: str) -> dict[str, str]:
    """The portal's environment for this process and the ones it starts, production-like
    (DEBUG off, so no query log; fresh real secrets) plus `settings`; then django.setup()
    and migrate. Returns the environment."""
    from connections.crypto import generate_key_entry

    env = {
        "DJANGO_SETTINGS_MODULE": "attio_portal.settings",
        "DATABASE_URL": database_url(args),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEYS": generate_key_entry("bench"),
        "API_KEY_HMAC_SECRET": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 (1-based); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

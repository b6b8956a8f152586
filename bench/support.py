"""What the benchmarks share: their own PostgreSQL database, the portal's settings, CPU.

Each script takes `--admin-url` (a database the role can connect to) and `--database`
(the one it creates, uses and drops).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
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
        # Plain http on loopback, with no TLS proxy in front: /mcp would refuse it.
        "SECURE_SSL_REDIRECT": "false",
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


def seed_tokens(user, connection, count: int, *, last_used_at=None) -> list[str]:
    """`count` connected apps of one client, each with a live access and refresh token as
    the authorization server leaves them (hashed); their plaintexts."""
    import uuid

    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value

    from mcp_gateway import oauth_server
    from mcp_gateway.models import ConnectedApp

    client = Application.objects.create(
        name="bench", client_type="public", authorization_grant_type="authorization-code",
        redirect_uris="http://127.0.0.1/callback",
    )  # fmt: skip
    expires = timezone.now() + timedelta(days=365)
    plaintexts, apps, tokens = [], [], []
    for _ in range(count):
        family = uuid.uuid4()
        apps.append(
            ConnectedApp(
                user=user, client=client, connection=connection, token_family=family,
                code_checksum=uuid.uuid4().hex, last_used_at=last_used_at,
            )
        )  # fmt: skip
        plaintext = oauth_server.new_access_token(None)
        token = AccessToken(
            user=user, application=client, scope="attio.read", expires=expires,
            resource=[oauth_server.mcp_url()],
        )  # fmt: skip
        set_token_value(token, plaintext)
        token.token_checksum = oauth_server.token_checksum(plaintext)  # bulk_create skips pre_save
        plaintexts.append(plaintext)
        tokens.append((token, family))
    ConnectedApp.objects.bulk_create(apps)
    AccessToken.objects.bulk_create([t for t, _ in tokens])
    refreshes = []
    for token, family in tokens:
        refresh = RefreshToken(
            user=user, application=client, access_token=token, token_family=family
        )
        set_token_value(refresh, oauth_server.new_refresh_token(None))
        refresh.token_checksum = uuid.uuid4().hex
        refreshes.append(refresh)
    RefreshToken.objects.bulk_create(refreshes)
    return plaintexts

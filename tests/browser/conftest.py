"""The whole service started as `make run` starts it, a fake Attio it talks to, and a
Chromium driven by Playwright.

The service runs in other processes (uvicorn, Celery worker, Celery beat under honcho)
against a database of its own: a fresh PostgreSQL database when the test run's
DATABASE_URL is PostgreSQL, a temporary SQLite file otherwise. pytest-django's test
database is never used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.fake_attio import FakeAttio
from tests.faults.harness import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "browser"
START_TIMEOUT = 90
STOP_TIMEOUT = 30


# --- the service's own database ---------------------------------------------------------


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql")


@dataclass
class ServiceDatabase:
    url: str
    drop: Callable[[], None]


def make_database(tmp: Path) -> ServiceDatabase:
    """A PostgreSQL database of its own next to the run's, or a temp-file SQLite."""
    run_url = os.environ.get("DATABASE_URL", "")
    if not _is_postgres(run_url):
        return ServiceDatabase(url=f"sqlite:///{tmp / 'service.sqlite3'}", drop=lambda: None)

    import psycopg
    from psycopg import sql

    parts = urlsplit(run_url)
    admin_url = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    name = f"portal_browser_{os.getpid()}"

    def execute(statement) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(statement)

    drop_statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    execute(drop_statement)  # left over by a run that was killed
    execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    return ServiceDatabase(url=url, drop=lambda: execute(drop_statement))


# --- the service ------------------------------------------------------------------------


@dataclass
class Service:
    base_url: str
    fake: FakeAttio
    fake_url: str
    log_path: Path
    email_dir: Path
    passwords: dict[str, str]
    queue: str
    env: dict[str, str]

    def database_dump(self) -> str:
        """Every row of the service's database, as `manage.py dumpdata` prints it."""
        return subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "dumpdata"],
            env=self.env,
            check=True,
            cwd=REPO,
            timeout=120,
            capture_output=True,
            text=True,
        ).stdout

    def broker_contents(self) -> str:
        """Whatever the broker still holds: queued and unacknowledged task messages."""
        broker = os.environ.get("CELERY_BROKER_URL", "")
        if broker.startswith("redis"):
            import redis

            client = redis.Redis.from_url(broker)
            parts = []
            for key in client.scan_iter():
                kind = client.type(key)
                if kind == b"list":
                    parts += client.lrange(key, 0, -1)
                elif kind == b"hash":
                    parts += client.hvals(key)
                elif kind == b"string":
                    parts.append(client.get(key) or b"")
                elif kind == b"zset":
                    parts += client.zrange(key, 0, -1)
            client.close()
            return b"\n".join(parts).decode(errors="replace")
        folder = REPO / "var" / "celery-broker"
        return "\n".join(p.read_text(errors="replace") for p in folder.glob("*.msg"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, *, after: int = 0, timeout: float = 30) -> str:
        """Wait for a line matching ``pattern`` past character ``after`` of the log."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log()[after:])
            if found:
                return found.group(0)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} did not appear in the service log within {timeout}s:\n"
                    + self.log_tail()
                )
            time.sleep(0.1)

    def emails(self) -> list[Path]:
        if not self.email_dir.is_dir():
            return []
        return sorted(p for p in self.email_dir.iterdir() if p.is_file())


def _wait_for_service(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    patterns = [r"worker\.\d+\s+\| .*ready", r"beat\.\d+\s+\| .*beat: Starting"]
    deadline = time.monotonic() + START_TIMEOUT
    healthy = False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the service exited at start-up ({process.returncode}):\n"
                + log_path.read_text(errors="replace")
            )
        if not healthy:
            with contextlib.suppress(httpx.TransportError):
                healthy = httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        text = log_path.read_text(errors="replace")
        if healthy and all(re.search(p, text) for p in patterns):
            return
        time.sleep(0.3)
    raise AssertionError(
        f"the service did not become ready within {START_TIMEOUT}s (healthy={healthy}):\n"
        + log_path.read_text(errors="replace")
    )


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C to honcho (it stops web, worker and beat), then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


def _purge_queue(queue: str) -> None:
    """Best effort: drop what beat published to this run's queue after the worker left."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    try:
        if broker.startswith("redis"):
            import redis

            client = redis.Redis.from_url(broker)
            # The queue's list and kombu's binding keys; the name is unique to this run.
            names = [queue, *client.scan_iter(match=f"_kombu.binding*.{queue}")]
            client.delete(*names)
            client.close()
        elif not broker or broker.startswith("filesystem"):
            folder = REPO / "var" / "celery-broker"
            for message in folder.glob(f"*.{queue}.msg"):
                message.unlink(missing_ok=True)
    except Exception as e:  # noqa: BLE001 (cleanup only)
        print(f"could not purge the test queue {queue}: {e}", file=sys.stderr)


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env,
        check=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """`honcho -f Procfile start` (web, worker, beat) against a served fake Attio."""
    tmp = tmp_path_factory.mktemp("browser-service")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    fake = FakeAttio(
        client_secret="fake-secret-" + secrets.token_urlsafe(24),
        redirect_uris=[f"{base_url}/connections/callback/"],
    )
    passwords = {
        "staff": "staff-" + secrets.token_urlsafe(16),
        "alice": "alice-" + secrets.token_urlsafe(16),
    }
    email_dir = tmp / "emails"
    queue = f"browser-{os.getpid()}-{secrets.token_hex(4)}"
    log_path = tmp / "service.log"
    database = make_database(tmp)
    try:
        with fake.serve() as fake_url:
            env = {
                **os.environ,
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "DJANGO_SETTINGS_MODULE": "attio_portal.settings",
                "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": database.url,
                "PORTAL_PORT": str(port),
                "PORTAL_BASE_URL": base_url,
                "CELERY_TASK_DEFAULT_QUEUE": queue,
                "ATTIO_CLIENT_ID": fake.client_id,
                "ATTIO_CLIENT_SECRET": fake.client_secret,
                "ATTIO_AUTHORIZE_URL": f"{fake_url}/authorize",
                "ATTIO_TOKEN_URL": f"{fake_url}/oauth/token",
                "ATTIO_REVOKE_URL": f"{fake_url}/oauth/revoke",
                "ATTIO_INTROSPECT_URL": f"{fake_url}/oauth/introspect",
                "ATTIO_API_BASE_URL": fake_url,
                "CONNECTION_SWEEP_INTERVAL_SECONDS": "2",
                "CONNECTION_VALIDATE_INTERVAL_SECONDS": "3",
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(email_dir),
            }
            env.pop("PORT", None)  # honcho sets its own; the Procfile reads PORTAL_PORT
            _manage(env, "migrate", "--noinput", "-v0")
            _manage(
                env,
                "shell",
                "-c",
                "from django.contrib.auth.models import User\n"
                f"User.objects.create_superuser('staff', 'staff@example.com', "
                f"{passwords['staff']!r})\n"
                f"User.objects.create_user('alice', 'alice@example.com', "
                f"{passwords['alice']!r}, first_name='Alice')\n",
            )
            with open(log_path, "w") as log:
                process = subprocess.Popen(
                    [str(BIN / "honcho"), "-f", "Procfile", "start"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                _wait_for_service(base_url, process, log_path)
                yield Service(
                    base_url=base_url,
                    fake=fake,
                    fake_url=fake_url,
                    log_path=log_path,
                    email_dir=email_dir,
                    passwords=passwords,
                    queue=queue,
                    env=env,
                )
            finally:
                # Stop the service while the fake still answers, then keep its log.
                _stop(process)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(log_path, ARTIFACTS / "service.log")
    finally:
        _purge_queue(queue)
        database.drop()


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "Playwright's own browser download is not used"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Snapshot:
    name: str
    url: str
    html: str
    shows_new_key: bool


@dataclass
class Pages:
    """Screenshots (test-artifacts/browser/) and the HTML of every page visited."""

    seen: list[Snapshot] = field(default_factory=list)

    def snap(self, page, name: str, *, shows_new_key: bool = False) -> str:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_load_state("load")
        path = ARTIFACTS / f"{len(self.seen) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        html = page.content()
        self.seen.append(Snapshot(name, page.url, html, shows_new_key))
        return html


@pytest.fixture(scope="module")
def pages() -> Pages:
    if ARTIFACTS.is_dir():
        for old in ARTIFACTS.glob("*.png"):
            old.unlink(missing_ok=True)
    return Pages()


# --- MCP over real HTTP -----------------------------------------------------------------


def mcp(base_url: str, key: str, use: Callable[[Any], Any]) -> Any:
    """Run ``await use(client)`` with the MCP SDK client signed in with ``key``.

    In a thread of its own: Playwright's sync API owns this thread's event loop.
    """
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
        async with http, Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as c:
            return await use(c)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, session()).result(timeout=90)

"""`make demo` as a new user meets it: the launcher starts portal, worker, beat and the fake
Attio on the ports asked for; she signs in, connects by OAuth and with the demo workspace
API key it printed, creates an API key, lists the tools with it, and Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest
from playwright.sync_api import expect

from attio_portal.devserver import parse_env_file
from tests.browser.conftest import (
    REPO,
    START_TIMEOUT,
    STOP_TIMEOUT,
    _manage,
    _purge_queue,
    make_database,
    mcp,
)
from tests.faults.harness import free_port

DEMO_KEY = parse_env_file((REPO / "demo.env").read_text())["DEMO_ATTIO_API_KEY"]


def wait_for(log_path, base_url, fake_url, process) -> str:
    patterns = [r"worker\.\d+\s+\| .*ready", r"beat\.\d+\s+\| .*beat: Starting"]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if process.poll() is not None:
            raise AssertionError(f"make demo exited ({process.returncode}):\n{text}")
        with contextlib.suppress(httpx.TransportError):
            healthy = httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
            fake_up = httpx.get(f"{fake_url}/v2/self", timeout=2).status_code == 401
            if healthy and fake_up and all(re.search(p, text) for p in patterns):
                return text
        time.sleep(0.3)
    raise AssertionError(f"make demo did not come up:\n{log_path.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    portal_port, fake_port = free_port(), free_port()
    database = make_database(tmp)
    queue = f"demo-{os.getpid()}-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "PORTAL_PORT": str(portal_port),
        "FAKE_ATTIO_PORT": str(fake_port),
        "DATABASE_URL": database.url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }
    for name in list(env):
        if name.startswith("ATTIO_") or name in ("PORTAL_BASE_URL", "PORT"):
            env.pop(name)
    log_path = tmp / "demo.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "attio_portal.devserver", "demo"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{portal_port}"
    try:
        banner = wait_for(log_path, base_url, f"http://127.0.0.1:{fake_port}", process)
        password = "demo-" + secrets.token_urlsafe(16)
        _manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            f"User.objects.create_superuser('admin', 'admin@example.com', {password!r})\n",
        )
        yield {
            "base_url": base_url,
            "fake_port": fake_port,
            "password": password,
            "banner": banner,
            "process": process,
            "log_path": log_path,
        }
    finally:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)
        _purge_queue(queue)
        database.drop()


def test_make_demo_prints_where_to_go_and_the_demo_api_key(demo):
    banner = demo["banner"]
    assert f"open {demo['base_url']}/" in banner
    assert f"http://127.0.0.1:{demo['fake_port']}/" in banner
    assert DEMO_KEY in banner
    assert "manage.py createsuperuser" in banner


def test_a_new_user_connects_both_ways_and_uses_a_key(demo, browser):
    base = demo["base_url"]
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{base}/accounts/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", demo["password"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")

        # By OAuth, through the fake's consent page, to Globex.
        page.get_by_role("button", name="Connect Attio").click()
        page.wait_for_url(re.compile(rf"http://127\.0\.0\.1:{demo['fake_port']}/authorize\?"))
        page.select_option("#workspace", label="Globex (globex)")
        page.click("#approve")
        page.wait_for_url(f"{base}/")
        connections = page.locator("section.card", has_text="Attio connections")
        expect(connections.locator("tbody tr", has_text="Globex")).to_have_count(1)

        # With the demo workspace API key the launcher printed, to Acme.
        page.get_by_role("link", name="Use an Attio API key").click()
        page.fill("#id_api_key", DEMO_KEY)
        page.get_by_role("button", name="Connect").click()
        page.wait_for_url(f"{base}/")
        expect(connections.locator("tbody tr", has_text="Acme")).to_have_count(1)

        page.get_by_role("link", name="New API key").click()
        page.fill("#id_name", "Demo laptop")
        page.select_option("#id_connection", label="Acme")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("h1")).to_have_text("Your new API key: Demo laptop")
        key = page.locator("#key").inner_text().strip()
    finally:
        context.close()

    async def list_tools(client):
        return [tool.name for tool in (await client.list_tools()).tools]

    tools = mcp(base, key, list_tools)
    assert "search_records" in tools


def test_ctrl_c_stops_every_demo_process(demo):
    process = demo["process"]
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=STOP_TIMEOUT)
    for port in (int(demo["base_url"].rsplit(":", 1)[1]), demo["fake_port"]):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)

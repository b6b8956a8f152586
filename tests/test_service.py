"""The whole service as `make run` starts it: web server, Celery worker and beat."""

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.faults.harness import BIN, REPO, free_port, spawn, stop, wait_until_serving


@pytest.fixture
def running_service(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PORTAL_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "attio_portal.settings",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=REPO)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            "User.objects.create_superuser("
            "'root', 'root@example.com', 'service-test-pass-1')",
        ],
        env=env,
        check=True,
        cwd=REPO,
    )
    log = open(tmp_path / "service.log", "w+")  # noqa: SIM115 (closed in finally)
    process = spawn([str(BIN / "honcho"), "-f", "Procfile", "start"], env, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, process, path="/healthz")
        yield base_url, process, log
    finally:
        # Ctrl-C, as a user stops `make run`.
        stop(process, signal.SIGINT, timeout=30)
        log.close()


def read_log(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def wait_for_log(log, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = read_log(log)
        if re.search(pattern, text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} never appeared in the service log:\n{read_log(log)}")


def test_run_command_serves_portal_worker_and_beat_and_stops_on_ctrl_c(running_service):
    base_url, process, log = running_service
    health = httpx.get(f"{base_url}/healthz", timeout=5)
    assert health.status_code == 200, read_log(log)
    assert health.json()["status"] == "ok"

    css = httpx.get(f"{base_url}/static/portal/portal.css", timeout=5)
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]

    # An admin signs in over real HTTP, CSRF and all.
    with httpx.Client(base_url=base_url, timeout=10) as browser:
        login_page = browser.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        response = browser.post(
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": token,
                "username": "root",
                "password": "service-test-pass-1",
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        assert response.status_code == 302
        assert browser.get("/admin/").status_code == 200

    # The access log leaves query strings out: the OAuth callback's carries a code.
    httpx.get(f"{base_url}/connections/callback/?code=fake_code_SECRET123&state=s", timeout=5)
    wait_for_log(log, r"GET /connections/callback/ HTTP")
    assert "fake_code_SECRET123" not in read_log(log)

    wait_for_log(log, r"worker\.\d+\s+\| .*ready")
    wait_for_log(log, r"beat\.\d+\s+\| .*beat: Starting")

    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) is not None
    text = read_log(log)
    for name in ("web", "worker", "beat"):
        assert re.search(rf"{name}\.1 stopped", text), text

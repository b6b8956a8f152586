"""The whole service as `make run` starts it (attio_portal.devserver): web server, Celery
worker and beat."""

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
        # The embedded broker's folder under var/ is shared: a queue of this test's own
        # keeps another checkout's worker (or a developer's `make run`) off its tasks.
        "CELERY_TASK_DEFAULT_QUEUE": f"service-test-{port}",
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / "celerybeat-schedule"),
        "LOG_LEVEL": "INFO",
        # A sweep a second, and an Attio that refuses connections: the one due
        # connection below fails its check (transiently) and stays claimed.
        "CONNECTION_SWEEP_INTERVAL_SECONDS": "1",
        "ATTIO_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=REPO)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            "from connections.models import Connection;"
            "root = User.objects.create_superuser("
            "'root', 'root@example.com', 'service-test-pass-1');"
            "c = Connection.objects.create(owner=root, method='api_key', workspace_id='w1');"
            "c.set_credentials(access_token='fake_key_service', refresh_token=None,"
            " expires_at=None);"
            "c.save()",
        ],
        env=env,
        check=True,
        cwd=REPO,
    )
    log = open(tmp_path / "service.log", "w+")  # noqa: SIM115 (closed in finally)
    # What `make run` runs: the launcher checks the port, migrates, starts the Procfile.
    process = spawn([sys.executable, "-m", "attio_portal.devserver", "run"], env, log)
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


def sign_in(browser: httpx.Client, password: str) -> httpx.Response:
    page = browser.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return browser.post(
        "/accounts/login/",
        data={"csrfmiddlewaretoken": token, "username": "root", "password": password},
        headers={"Referer": f"{browser.base_url}accounts/login/"},
    )


def test_the_log_has_one_line_per_thing_and_none_for_routine_work(running_service):
    base_url, process, log = running_service
    wait_for_log(log, r"worker\.\d+\s+\| .*ready")

    with httpx.Client(base_url=base_url, timeout=10) as browser:
        assert sign_in(browser, "service-test-pass-1").status_code == 302
        css = browser.get("/static/portal/portal.css")
        assert css.status_code == 200
        assert browser.head("/static/portal/portal.css").status_code == 200
        cached = browser.get(
            "/static/portal/portal.css", headers={"If-None-Match": css.headers["ETag"]}
        )
        assert cached.status_code == 304
        icon = browser.get("/favicon.ico", follow_redirects=True)
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert browser.get("/no-such-page/").status_code == 404
    with httpx.Client(base_url=base_url, timeout=10) as stranger:
        assert sign_in(stranger, "not-the-password").status_code == 200

    # The first sweep finds the due connection; the next ones, a second apart, find
    # nothing (it stays claimed after its failed check) and log nothing.
    wait_for_log(log, r"Sweep: 1 connection due")
    wait_for_log(log, r"Swept 1 connection: 1 failed \(transient\)")
    time.sleep(4)
    text = read_log(log)
    assert "StreamingHttpResponse" not in text
    assert "Not Found" not in text
    assert len(re.findall(r" 404\b", text)) == 1, text
    axes = [line for line in text.splitlines() if "AXES" in line]
    assert len(axes) == 1, text
    assert "WARNING" in axes[0] and "login failure" in axes[0]
    assert text.count("Sweep: ") == 1, text
    for routine in ("Sending due task", "] received", "succeeded in"):
        assert routine not in text, text

    # Ctrl-C: everything stops without an error on the way.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) is not None
    text = read_log(log)
    for name in ("web", "worker", "beat"):
        assert re.search(rf"{name}\.1 stopped", text), text
    assert not re.search(r"ERROR|CRITICAL|Traceback", text), text

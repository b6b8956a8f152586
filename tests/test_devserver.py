"""`make run` and `make demo` (attio_portal.devserver): ports, environment, clear refusals."""

import socket
import subprocess
import sys

import pytest

from attio_portal import devserver
from tests.faults.harness import REPO


@pytest.fixture
def repo(tmp_path):
    """A folder standing in for the checkout, with the real demo.env and no .env."""
    (tmp_path / "demo.env").write_text((REPO / "demo.env").read_text())
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_points_the_portal_at_the_fake_on_the_chosen_ports(repo):
    portal, fake = 8123, 8124
    environ = {"PATH": "/usr/bin", "PORTAL_PORT": str(portal), "FAKE_ATTIO_PORT": str(fake)}
    plan = devserver.prepare("demo", environ, repo)

    assert plan.honcho[1:3] == ["-f", "Procfile.demo"]
    assert plan.ports == [
        ("127.0.0.1", portal, "PORTAL_PORT"),
        ("127.0.0.1", fake, "FAKE_ATTIO_PORT"),
    ]
    assert environ["PORTAL_BASE_URL"] == f"http://127.0.0.1:{portal}"
    assert environ["ATTIO_TOKEN_URL"] == f"http://127.0.0.1:{fake}/oauth/token"
    assert environ["ATTIO_API_BASE_URL"] == f"http://127.0.0.1:{fake}"
    text = "\n".join(plan.lines)
    assert f"open http://127.0.0.1:{portal}/" in text
    assert f"http://127.0.0.1:{fake}/" in text
    assert environ["DEMO_ATTIO_API_KEY"] in text


def test_demo_uses_the_default_ports_when_none_are_set(repo):
    environ = {"PATH": "/usr/bin"}
    devserver.prepare("demo", environ, repo)
    assert environ["PORTAL_PORT"] == "8000" and environ["FAKE_ATTIO_PORT"] == "8765"
    assert environ["ATTIO_AUTHORIZE_URL"] == "http://127.0.0.1:8765/authorize"


def test_what_the_shell_sets_wins_over_demo_env_and_dot_env(repo):
    (repo / ".env").write_text(
        "ATTIO_CLIENT_ID=from-dot-env\nATTIO_CLIENT_SECRET=from-dot-env\nLOG_LEVEL=DEBUG\n"
    )
    environ = {
        "PATH": "/usr/bin",
        "ATTIO_CLIENT_ID": "from-shell",
        "PORTAL_BASE_URL": "http://portal.test:9999",
    }
    devserver.prepare("demo", environ, repo)
    assert environ["ATTIO_CLIENT_ID"] == "from-shell"
    assert environ["PORTAL_BASE_URL"] == "http://portal.test:9999"
    # demo.env before .env: a .env made for a real Attio app does not leak into the demo.
    assert environ["ATTIO_CLIENT_SECRET"] == "fake-client-secret"
    assert environ["LOG_LEVEL"] == "DEBUG"


def test_run_takes_its_port_from_dot_env_and_hands_honcho_no_env_file(repo):
    port = 8125
    (repo / ".env").write_text(f"PORTAL_PORT={port}\n")
    environ = {"PATH": "/usr/bin", "PORT": "5000"}
    plan = devserver.prepare("run", environ, repo)
    assert plan.honcho[1:] == ["-f", "Procfile", "-e", "/dev/null", "start"]
    assert plan.ports == [("127.0.0.1", port, "PORTAL_PORT")]
    assert environ["PORTAL_PORT"] == str(port)
    assert "PORT" not in environ  # honcho's own; the Procfile reads PORTAL_PORT
    assert "ATTIO_API_BASE_URL" not in environ  # no demo settings for `make run`
    assert f"open http://127.0.0.1:{port}/" in "\n".join(plan.lines)


def run_devserver(command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attio_portal.devserver", command],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "variable"),
    [("run", "PORTAL_PORT"), ("demo", "PORTAL_PORT"), ("demo", "FAKE_ATTIO_PORT")],
)
def test_a_port_in_use_gives_one_line_naming_the_variable(command, variable):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        others = {"PORTAL_PORT": str(free_port()), "FAKE_ATTIO_PORT": str(free_port())}
        result = run_devserver(command, **{**others, variable: str(port)})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"`{variable}={port + 1} make {command}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_that_is_no_number_is_refused_in_one_line():
    result = run_devserver("run", PORTAL_PORT="eighty")
    assert result.returncode == 1
    assert result.stderr == "PORTAL_PORT='eighty' is not a port number (1-65535).\n"


def test_an_unknown_command_shows_the_usage():
    result = run_devserver("start")
    assert result.returncode == 2
    assert "usage: python -m attio_portal.devserver run|demo" in result.stderr

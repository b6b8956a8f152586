"""`make run` and `make demo`: check the ports, migrate, say where to go, start the Procfile.

    python -m attio_portal.devserver run     # web server, Celery worker and beat (Procfile)
    python -m attio_portal.devserver demo    # the same plus the fake Attio (Procfile.demo)

The ports come from PORTAL_PORT (8000) and FAKE_ATTIO_PORT (8765). Variables set in the
shell always win: `.env`, and for the demo `demo.env`, only fill in what is unset. (honcho's
own env file would override the shell, so honcho is given none.)
"""

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from honcho.environ import parse as parse_env_file

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_PORTS = {"PORTAL_PORT": 8000, "FAKE_ATTIO_PORT": 8765}


class StartError(Exception):
    """Something stops the service from starting; the message is one line for the user."""


def read_env_file(env_file: Path) -> dict[str, str]:
    if not env_file.is_file():
        return {}
    return parse_env_file(env_file.read_text(encoding="utf-8"))


def fill_in_environment(environ: dict[str, str], values: dict[str, str]) -> None:
    """Set the ``values`` that ``environ`` lacks, with ``${VAR}``s expanded from it."""
    for name, value in values.items():
        if name not in environ:
            environ[name] = Template(value).safe_substitute(environ)


def port_from(environ: dict[str, str], variable: str, dotenv: dict[str, str]) -> int:
    value = environ.setdefault(variable, dotenv.get(variable, str(DEFAULT_PORTS[variable])))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise StartError(f"{variable}={value!r} is not a port number (1-65535).")
    return int(value)


def check_port_free(host: str, port: int, variable: str, command: str) -> None:
    """Fail with one line naming ``variable`` if something already listens on the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StartError(
                f"Port {port} on {host} is already in use: stop what is listening there, "
                f"or choose another port, e.g. `{variable}={port + 1} make {command}`."
            ) from None


@dataclass
class Plan:
    honcho: list[str]  # the command line
    lines: list[str]  # what to print once migrations ran
    ports: list[tuple[str, int, str]]  # (host, port, variable) that must be free


def prepare(command: str, environ: dict[str, str], repo: Path = REPO) -> Plan:
    """What to start and say; ``environ`` is completed in place."""
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    # The shell first, then .env; for the demo, demo.env comes before .env so that a .env
    # made for a real Attio app does not point the demo at Attio.
    dotenv = read_env_file(repo / ".env")
    host = environ.setdefault("PORTAL_HOST", dotenv.get("PORTAL_HOST", "127.0.0.1"))
    portal_port = port_from(environ, "PORTAL_PORT", dotenv)
    # honcho hands each process a PORT of its own; the Procfiles read PORTAL_PORT.
    environ.pop("PORT", None)
    url = f"http://{host}:{portal_port}/"
    ports = [(host, portal_port, "PORTAL_PORT")]
    if command == "demo":
        fake_port = port_from(environ, "FAKE_ATTIO_PORT", dotenv)
        ports.append(("127.0.0.1", fake_port, "FAKE_ATTIO_PORT"))
        fill_in_environment(environ, read_env_file(repo / "demo.env"))
    fill_in_environment(environ, dotenv)

    python = BIN / "python"
    lines = [""]
    if command == "demo":
        lines += [
            f"  Attio Portal against the fake Attio: open {url}",
            f"  The fake Attio listens on http://127.0.0.1:{environ['FAKE_ATTIO_PORT']}/.",
            "  'Connect Attio' leads to the fake's consent page (pick Acme or Globex).",
            "  'Use an Attio API key' accepts the demo workspace key (Acme):",
            f"      {environ.get('DEMO_ATTIO_API_KEY', '')}",
        ]
    else:
        lines.append(f"  Attio Portal is starting: open {url}")
    lines += [
        "  First time? Create an admin in another terminal with:",
        f"      {os.path.relpath(python, repo)} manage.py createsuperuser",
        "  Ctrl-C stops everything.",
        "",
    ]
    procfile = "Procfile.demo" if command == "demo" else "Procfile"
    honcho = [str(BIN / "honcho"), "-f", procfile, "-e", os.devnull, "start"]
    return Plan(honcho, lines, ports)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["run"], ["demo"]):
        print("usage: python -m attio_portal.devserver run|demo", file=sys.stderr)
        return 2
    environ = dict(os.environ)
    try:
        plan = prepare(args[0], environ)
        for host, port, variable in plan.ports:
            check_port_free(host, port, variable, args[0])
    except StartError as e:
        print(e, file=sys.stderr)
        return 1
    os.chdir(REPO)
    migrate = [str(BIN / "python"), "manage.py", "migrate", "--noinput"]
    if subprocess.run(migrate, env=environ).returncode != 0:
        return 1
    print("\n".join(plan.lines), flush=True)
    os.execve(plan.honcho[0], plan.honcho, environ)


if __name__ == "__main__":
    sys.exit(main())

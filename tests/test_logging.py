"""What the portal's logging configuration prints at the default level (LOG_LEVEL=INFO).

Run in a fresh interpreter, so the configuration is the one the service starts with,
not the test run's.
"""

import os
import subprocess
import sys
import textwrap

from tests.faults.harness import REPO

# Records as Django, django-axes and Celery emit them, and one of the portal's own.
EMIT = textwrap.dedent(
    """
    import logging

    import django

    django.setup()


    def emit(name, level, message, *args, **extra):
        logging.getLogger(name).log(level, message, *args, extra=extra)


    emit("django.request", logging.WARNING, "Not Found: /favicon.ico", status_code=404)
    emit("django.request", logging.ERROR, "Internal Server Error: /boom", status_code=500)
    emit("axes.handlers.database", logging.INFO, "AXES: Successful login by someone.")
    emit("axes.handlers.database", logging.WARNING, "AXES: New login failure by someone.")
    emit("celery.beat", logging.INFO, "beat: Starting...")
    emit("celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)", "sweep", "task")
    emit("celery.worker.strategy", logging.INFO, "Task sweep_connections[1] received")
    emit("celery.app.trace", logging.INFO, "Task sweep_connections[1] succeeded in 0.01s: 0")
    emit("celery.app.trace", logging.ERROR, "Task sweep_batch[2] raised unexpected: boom")
    exited = "Process %r pid:%r exited with %r"
    emit("multiprocessing", logging.ERROR, exited, "ForkPoolWorker-1", 11, "signal 15 (SIGTERM)")
    emit("multiprocessing", logging.ERROR, exited, "ForkPoolWorker-2", 12, "signal 9 (SIGKILL)")
    emit("connections.tasks", logging.INFO, "Sweep: 1 connection due")
    emit("mcp.server.streamable_http", logging.INFO, "Terminating session: None")
    emit("mcp.server.streamable_http", logging.WARNING, "Session crashed")
    """
)


def printed_lines() -> list[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "attio_portal.settings",
        # Development, where Django's own console handler used to print its records too.
        "DEBUG": "true",
        "LOG_LEVEL": "INFO",
    }
    done = subprocess.run(
        [sys.executable, "-c", EMIT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def test_each_record_worth_a_line_is_printed_once_and_routine_ones_not_at_all():
    lines = printed_lines()
    # A 404 is in uvicorn's access log; axes' success, Celery's routine lines, a pool
    # process's exit on the SIGTERM that stops the service and the SDK's line at the end
    # of every stateless /mcp request are noise.
    expected = [
        "ERROR django.request Internal Server Error: /boom",
        "WARNING axes.handlers.database AXES: New login failure by someone.",
        "INFO celery.beat beat: Starting...",
        "ERROR celery.app.trace Task sweep_batch[2] raised unexpected: boom",
        "ERROR multiprocessing Process 'ForkPoolWorker-2' pid:12 exited with 'signal 9 (SIGKILL)'",
        "INFO connections.tasks Sweep: 1 connection due",
        "WARNING mcp.server.streamable_http Session crashed",
    ]
    assert [line.split(" ", 2)[2] for line in lines] == expected, "\n".join(lines)

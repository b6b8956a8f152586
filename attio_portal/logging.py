"""Logging filters: secrets stay out of log lines, and each thing is logged once."""

import logging


class StripQueryStrings(logging.Filter):
    """Drop query strings from access-log lines.

    Attio's OAuth callback carries a one-time code in its query string; an access log
    that printed full URLs would write it to disk.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access records: (client, method, path with query, http version, status)
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            if isinstance(args[2], str):
                args[2] = args[2].split("?", 1)[0]
                record.args = tuple(args)
        return True


class SkipClientErrors(logging.Filter):
    """Drop django.request's lines for 4xx answers ("Not Found: /favicon.ico").

    uvicorn's access log already has a line for every request, with its status: a 404
    logged twice reads like two problems. Server errors (5xx) still come through, with
    their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "django.request":
            return True
        return getattr(record, "status_code", 500) >= 500


class SkipBeatSending(logging.Filter):
    """Drop Celery beat's "Scheduler: Sending due task ..." lines.

    Beat sends the sweep every minute, and the sweep logs a line itself when it has work.
    Beat's other lines (starting, errors) stay.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Scheduler: Sending due task")


class SkipPoolSigtermExits(logging.Filter):
    """Drop the Celery worker's ERROR "Process 'ForkPoolWorker-1' pid:… exited with
    'signal 15 (SIGTERM)'" lines.

    honcho (`make run`, on Ctrl-C) signals the worker's whole process group, and so
    does systemd with its default KillMode: the pool processes get the SIGTERM too,
    while the worker is stopping them itself, and each one's exit was an ERROR on every
    stop. Other exits (the OOM killer's SIGKILL, a crash) are still logged; a task cut
    short is logged on its own ("Task handler raised error: WorkerLostError") and goes
    back on the queue (acks_late).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exit_status = record.args[-1] if isinstance(record.args, tuple) and record.args else ""
        return not (
            str(record.msg).startswith("Process %r pid:%r exited with")
            and "(SIGTERM)" in str(exit_status)
        )

"""Logging filters that keep secrets out of log lines."""

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

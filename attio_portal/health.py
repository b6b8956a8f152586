"""Health checks for /healthz: does the database answer, does the broker answer."""

import logging

from django.db import connection

from .celery import app as celery_app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


def check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Health check: database unavailable", exc_info=True)
        return False
    return True


def check_broker() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Health check: broker unavailable", exc_info=True)
        return False
    return True

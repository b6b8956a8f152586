"""Celery tasks for the gateway. Thin: each calls the service of its name."""

from celery import shared_task


@shared_task(acks_late=True)
def clear_expired_oauth_rows() -> dict[str, int]:
    """Beat runs this daily: expired OAuth tokens and codes, and what they leave behind."""
    from . import services

    return services.clear_expired_oauth_rows()


@shared_task(acks_late=True)
def delete_old_tool_calls() -> int:
    """Beat runs this hourly: tool-call rows past TOOL_CALL_RETENTION_DAYS."""
    from . import services

    return services.delete_old_tool_calls()


@shared_task(acks_late=True)
def roll_up_usage() -> int:
    """Beat runs this hourly: the days that are over, summed for the usage page."""
    from . import usage

    return usage.roll_up()

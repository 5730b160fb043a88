import dramatiq

from app.maintenance.cleanup import cleanup as run_cleanup
from app.maintenance.resend import resend_failed_emails as resend

# Periodic, idempotent work: the next tick is the retry.


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def resend_failed_emails() -> None:
    """Send failed emails again as a new series of attempts (see app.maintenance.resend)."""
    resend()


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60 * 60 * 1000)
def cleanup() -> None:
    """Delete old jobs and expired export files (see app.maintenance.cleanup)."""
    run_cleanup()

import dramatiq

from app.jobs.kinds import actor_options
from app.maintenance.cleanup import cleanup as run_cleanup
from app.maintenance.resend import resend_failed_emails as resend

# Periodic, idempotent work: never retried, the next tick is the retry.


@dramatiq.actor(**actor_options("resend_failed_emails"))
def resend_failed_emails() -> None:
    """Send failed emails again as a new series of attempts (see app.maintenance.resend)."""
    resend()


@dramatiq.actor(**actor_options("cleanup"))
def cleanup() -> None:
    """Delete old jobs and expired export files (see app.maintenance.cleanup)."""
    run_cleanup()

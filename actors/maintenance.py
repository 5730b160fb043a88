import dramatiq

from app.maintenance.cleanup import CLEANUP
from app.maintenance.cleanup import cleanup as run_cleanup
from app.maintenance.resend import RESEND_FAILED_EMAILS
from app.maintenance.resend import resend_failed_emails as resend


@dramatiq.actor(**RESEND_FAILED_EMAILS.actor_options())
def resend_failed_emails() -> None:
    """Send failed emails again as a new series of attempts (see app.maintenance.resend)."""
    resend()


@dramatiq.actor(**CLEANUP.actor_options())
def cleanup() -> None:
    """Delete old jobs and expired export files (see app.maintenance.cleanup)."""
    run_cleanup()

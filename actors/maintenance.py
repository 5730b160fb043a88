import dramatiq

from app.maintenance import cleanup as cleanup_service
from app.maintenance import resend as resend_service
from app.maintenance.cleanup import CLEANUP
from app.maintenance.resend import RESEND_FAILED_EMAILS


@dramatiq.actor(**RESEND_FAILED_EMAILS.actor_options())
def resend_failed_emails() -> None:
    """Send failed emails again as a new series of attempts (see app.maintenance.resend)."""
    resend_service.SERVICE.run_once()


@dramatiq.actor(**CLEANUP.actor_options())
def cleanup() -> None:
    """Delete old jobs and expired export files (see app.maintenance.cleanup)."""
    cleanup_service.SERVICE.run_once()

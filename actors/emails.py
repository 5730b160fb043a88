import dramatiq

from app import config
from app.emails import deliver
from app.jobs.errors import PermanentError

_settings = config.from_env()


@dramatiq.actor(
    queue_name="emails",
    max_retries=_settings["EMAIL_MAX_RETRIES"],
    min_backoff=_settings["RETRY_MIN_BACKOFF_MS"],
    max_backoff=_settings["RETRY_MAX_BACKOFF_MS"],
    throws=(PermanentError,),
)
def send_email(email_id: str) -> None:
    """Deliver one email; safe to run twice (see ``app.emails.deliver``)."""
    deliver(email_id)

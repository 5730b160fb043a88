import dramatiq

from app.emails import deliver
from app.jobs.errors import PermanentError
from app.jobs.kinds import actor_options


@dramatiq.actor(**actor_options("send_email"), throws=(PermanentError,))
def send_email(email_id: str) -> None:
    """Deliver one email; safe to run twice (see ``app.emails.deliver``)."""
    deliver(email_id)

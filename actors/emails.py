from functools import partial

import dramatiq

from app.emails import check_still_to_send, deliver
from app.jobs.errors import PermanentError
from app.jobs.kinds import actor_options


@dramatiq.actor(**actor_options("send_email"), throws=(PermanentError,))
def send_email(email_id: str) -> None:
    """Deliver one email; safe to run twice (see ``app.emails.deliver``), and sent
    only while this attempt still owns its job (checked right before DATA)."""
    deliver(email_id, before_data=partial(check_still_to_send, email_id))

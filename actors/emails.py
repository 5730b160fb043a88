from functools import partial

import dramatiq

from app.emails import SEND_EMAIL, check_still_to_send, deliver


@dramatiq.actor(**SEND_EMAIL.actor_options())
def send_email(email_id: str) -> None:
    """Deliver one email; safe to run twice (see ``app.emails.deliver``), and sent
    only while this attempt still owns its job (checked right before DATA)."""
    deliver(email_id, before_data=partial(check_still_to_send, email_id))

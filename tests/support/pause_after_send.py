"""Loaded into a test worker (``dramatiq actors tests.support.pause_after_send``):
holds the worker still after ``send_email`` has recorded the email as sent and
before the job is marked succeeded and its message acknowledged, so that a test
can SIGKILL the worker at exactly that point."""

import time

import dramatiq
from dramatiq.middleware import Middleware


class PauseAfterSend(Middleware):
    # Appended last, so its after-hook runs first: before JobState and the ack.
    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name == "send_email" and exception is None:
            time.sleep(300)


dramatiq.get_broker().add_middleware(PauseAfterSend())

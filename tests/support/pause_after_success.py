"""Loaded into a test worker (``dramatiq actors tests.support.pause_after_success``):
holds the worker still after ``send_email``'s success has been committed and
before its message is acknowledged, so that a test can SIGKILL the worker at
exactly that point."""

import time

import dramatiq
from dramatiq.middleware import Middleware

from app.jobs.middleware import AppContext


class PauseAfterSuccess(Middleware):
    # Placed before AppContext, so its after-hook runs after JobState's (the
    # commit) and before the worker acknowledges the message.
    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name == "send_email" and exception is None:
            time.sleep(300)


dramatiq.get_broker().add_middleware(PauseAfterSuccess(), before=AppContext)

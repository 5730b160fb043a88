"""Loaded into a test worker (``dramatiq actors tests.support.crash_on_send``): the
worker process dies as soon as it starts a ``send_email`` job, as one killed by
the kernel's OOM killer would, so that RabbitMQ gets the message back."""

import os

import dramatiq
from dramatiq.middleware import Middleware


class CrashOnSend(Middleware):
    # Appended last: JobState has opened the attempt, as for a real crash mid-job.
    def before_process_message(self, broker, message):
        if message.actor_name == "send_email":
            os._exit(70)


dramatiq.get_broker().add_middleware(CrashOnSend())

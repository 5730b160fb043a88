"""Dramatiq middleware that runs each message inside the Flask app and keeps its
job row in step with what the worker does.

Order matters: the broker calls ``before_*`` hooks in list order and ``after_*``
hooks in reverse, so ``broker.py`` lists ``AppContext``, then ``JobState``, then
``Retries``. ``Retries`` thus decides before ``JobState`` records the outcome,
and both run inside the app context.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta

from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from app.db import utcnow
from app.jobs import state

logger = logging.getLogger(__name__)


class AppContext(Middleware):
    """Pushes a Flask app context around every message.

    The app is created when the worker boots, not when ``actors`` is imported,
    so that importing actors (as the web does) has no side effects. Tests may
    set ``app`` themselves."""

    def __init__(self, create_app):
        self.create_app = create_app
        self.app = None
        self._local = threading.local()

    def before_worker_boot(self, broker, worker):
        if self.app is None:
            self.app = self.create_app()

    def before_process_message(self, broker, message):
        context = self.app.app_context()
        context.push()
        self._local.context = context

    def after_process_message(self, broker, message, *, result=None, exception=None):
        context = getattr(self._local, "context", None)
        if context is not None:
            self._local.context = None
            context.pop()

    def after_skip_message(self, broker, message):
        self.after_process_message(broker, message)


class JobState(Middleware):
    """queued → running → succeeded, or running → retrying → running ..., or → failed.

    The job id is the message id. A message whose job is finished, cancelled or
    running elsewhere is skipped (acknowledged, not run); one whose job row does
    not exist is dead-lettered, since no retry can create the row."""

    def __init__(self, app_context: AppContext):
        self.app_context = app_context
        self._local = threading.local()

    def before_nack(self, broker, message):
        """The worker dead-letters a message for an unknown actor before any
        processing starts; fail its job, if it has one, so the admin page shows it."""
        if message.actor_name in broker.actors:
            return
        with self.app_context.app.app_context():
            state.fail_unrunnable(
                message.message_id, ActorNotFound(f"no actor named {message.actor_name!r}")
            )

    def before_process_message(self, broker, message):
        self._local.current = None
        try:
            attempt = state.start_attempt(
                message.message_id,
                series=message.options.get("series", 0),
                redelivered=getattr(message, "redelivered", False),
            )
        except state.JobNotFound:
            logger.error("no job row for message %s; dead-lettering it", message.message_id)
            message.fail()
            raise SkipMessage() from None
        if attempt is None:
            logger.info("job %s is not runnable now; skipping its message", message.message_id)
            raise SkipMessage()
        self._local.current = (message.message_id, attempt)

    def before_enqueue(self, broker, message, delay):
        """Retries re-enqueues the failed message with a delay: record the
        ``retrying`` state before the retry is published, so that the retry can
        never start before its job says it may."""
        current = getattr(self._local, "current", None)
        if current is None or delay is None or current[0] != message.message_id:
            return
        error = sys.exc_info()[1] or RuntimeError("attempt failed")
        job_id, attempt = current
        state.fail_attempt(
            job_id, attempt, error, retry_at=utcnow() + timedelta(milliseconds=delay)
        )
        self._local.current = None

    def after_process_message(self, broker, message, *, result=None, exception=None):
        current = getattr(self._local, "current", None)
        self._local.current = None
        if current is None:  # not started, or the retry is already recorded
            return
        job_id, attempt = current
        if exception is None:
            state.succeed(job_id, attempt, result)
        else:
            # Retries gave up (or the error is permanent), or could not publish
            # the retry; either way no further attempt is scheduled.
            state.fail_attempt(job_id, attempt, exception, retry_at=None)

    def after_skip_message(self, broker, message):
        self._local.current = None

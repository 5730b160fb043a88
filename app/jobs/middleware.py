"""Dramatiq middleware that runs each message inside the Flask app and keeps its
job row in step with what the worker does.

Order matters: the broker calls ``before_*`` hooks in list order and ``after_*``
hooks in reverse. ``broker.py`` lists ``AppContext``, ``JobState``, ``Retries``
and then ``TimeLimit``: so ``Retries`` decides before ``JobState`` records the
outcome, both run inside the app context, and a job's time limit is lifted
before its outcome is written (a write waiting for the database must not be
interrupted by the limit, or Dramatiq would ack a message whose outcome was
never recorded).
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from datetime import timedelta

from dramatiq.common import dq_name
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from app.db import utcnow
from app.jobs import attempts, durable, shutdown, state
from app.jobs.workers import WorkerLease

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

    The job id is the message id. Before a message runs, its job is claimed for
    this worker process (``attempts.start_attempt``); a message whose job is
    finished, cancelled or running under a live lease is skipped (acknowledged,
    not run); one whose job row does not exist is dead-lettered. Every write
    goes through ``durable.write``: none is skipped because the database blinked.

    The retry policy comes from the job row and the configuration, not from the
    message: it overwrites the message's Dramatiq options before Retries reads
    them, so a rescued copy or an old message counts its retries right."""

    def __init__(self, app_context: AppContext):
        self.app_context = app_context
        self.lease: WorkerLease | None = None

    def after_worker_boot(self, broker, worker):
        shutdown.give_every_thread_the_whole_timeout()
        queues = [queue for queue in worker.consumers if queue != dq_name(queue)]
        self.lease = WorkerLease(self.app_context.app, queues)
        self.lease.start()

    def after_worker_shutdown(self, broker, worker):
        """Release the lease only once every worker thread has stopped: a thread
        still running after the shutdown timeout dies with the process, and its
        job is taken over when the lease expires, not while it still runs."""
        if self.lease is None:
            return
        busy = sum(thread.is_alive() for thread in worker.workers)
        if busy:
            logger.warning("%d job(s) still running at the end of the shutdown timeout; "
                           "they are taken over once this worker's lease expires", busy)
        self.lease.stop(release=not busy)

    def before_nack(self, broker, message):
        """The worker dead-letters a message for an unknown actor before any
        processing starts; fail its job, if it has one, so the admin page shows it."""
        if message.actor_name in broker.actors:
            return
        with self.app_context.app.app_context():
            durable.write(
                state.fail_unrunnable,
                message.message_id,
                message.actor_name,
                ActorNotFound(f"no actor named {message.actor_name[:100]!r}"),
            )

    def before_process_message(self, broker, message):
        self._set_claim(None)
        self._wait_for_lease(message)
        worker_id = self.lease.id if self.lease is not None else "unregistered"
        try:
            claim = durable.write(
                attempts.start_attempt,
                message.message_id,
                series=message.options.get("series", 0),
                worker_id=worker_id,
                token=uuid.uuid4().hex,
                actor=message.actor_name,
                args=list(message.args),
            )
        except (state.JobNotFound, attempts.MessageMismatch) as refused:
            logger.error("message %s refused (%s); dead-lettering it", message.message_id,
                         type(refused).__name__)
            message.fail()
            raise SkipMessage() from None
        except Exception as error:
            # Not an outage (durable.write waits those out): never run unclaimed,
            # and leave the job in a state that says why.
            logger.critical("could not claim job %s; failing it", message.message_id,
                            exc_info=True)
            self._write_fallback(attempts.fail_unclaimable, message.message_id, error)
            message.fail()
            raise SkipMessage() from None
        if claim is None:
            logger.info("job %s is not runnable now; skipping its message", message.message_id)
            raise SkipMessage()
        if self.lease is not None:
            self.lease.note_claim(message.queue_name, claim.published_at)
        config = self.app_context.app.config
        message.options.update(
            retries=claim.retries,
            max_retries=claim.max_retries,
            min_backoff=config["RETRY_MIN_BACKOFF_MS"],
            max_backoff=config["RETRY_MAX_BACKOFF_MS"],
        )
        self._set_claim(claim)

    def before_enqueue(self, broker, message, delay):
        """Retries re-enqueues the failed message with a delay: record the
        ``retrying`` state before the retry is published, so that the retry can
        never start before its job says it may."""
        claim = self._claim()
        if claim is None or delay is None or claim.job_id != message.message_id:
            return
        error = sys.exc_info()[1] or RuntimeError("attempt failed")
        retry_at = utcnow() + timedelta(milliseconds=delay)
        self._record(claim, attempts.fail_attempt, claim, error, retry_at=retry_at)
        self._set_claim(None)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        claim = self._claim()
        self._set_claim(None)
        if claim is None:  # not started, or the retry is already recorded
            return
        if exception is None:
            self._record(claim, attempts.succeed, claim, result)
        else:
            # Retries gave up (or the error is permanent), or could not publish
            # the retry; either way no further attempt is scheduled.
            self._record(claim, attempts.fail_attempt, claim, exception, retry_at=None)

    def _wait_for_lease(self, message) -> None:
        """Claim nothing while this process's lease is not live (just booted with
        the database away, or fenced): the message waits, unacked."""
        if self.lease is None or self.lease.live():
            return
        logger.warning("worker lease not live; job %s waits until it is", message.message_id)
        while not self.lease.wait_live(timeout=5) and not self.lease.stopped:
            pass

    def _record(self, claim: attempts.Claim, change, *args, **kwargs) -> None:
        """Write an attempt's outcome; when the database refuses it for good,
        fail the job with what can always be stored, so it never stays running."""
        try:
            durable.write(change, *args, **kwargs)
        except Exception as error:
            logger.error("job %s: its outcome could not be recorded; failing it",
                         claim.job_id, exc_info=True)
            if not self._write_fallback(attempts.fail_unrecorded, claim, error):
                self._write_fallback(attempts.fail_unrecorded, claim, error, hooks=False)

    @staticmethod
    def _write_fallback(change, *args, **kwargs) -> bool:
        try:
            durable.write(change, *args, **kwargs)
            return True
        except Exception:
            logger.critical("could not record the failure either", exc_info=True)
            return False

    def after_skip_message(self, broker, message):
        self._set_claim(None)

    @staticmethod
    def _claim() -> attempts.Claim | None:
        return attempts.current_claim.get()

    @staticmethod
    def _set_claim(claim: attempts.Claim | None) -> None:
        attempts.current_claim.set(claim)

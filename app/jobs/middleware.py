"""Dramatiq middleware that runs each message inside the Flask app and keeps its
job row in step with what the worker does; ``stack`` is the worker's whole list.
"""

from __future__ import annotations

import logging
import threading
import uuid

from dramatiq.common import dq_name
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage, TimeLimit
from flask import Flask

from app.jobs import attempts, durable, outcomes, shutdown, state
from app.jobs.attempts import Claim, StartAttempt
from app.jobs.outcomes import Outcome, RetryPolicy, Unclaimable, Unrecorded
from app.jobs.workers import WorkerLease
from app.states import JobStatus
from app.worker_metrics import WorkerMetrics

logger = logging.getLogger(__name__)


def stack(app: Flask) -> list[Middleware]:
    """Every middleware a broker of ``app`` runs, in order. The broker calls
    ``before_*`` hooks in list order and ``after_*`` hooks in reverse: so both of
    JobState's run inside the app context, and TimeLimit lifts a job's limit
    before JobState writes its outcome (a write waiting for the database must
    not be interrupted by the limit). Dramatiq's Retries is not among them:
    JobState decides retries (``app/jobs/outcomes.py``)."""
    app_context = AppContext(app)
    return [app_context, JobState(app_context), TimeLimit(), WorkerMetrics()]


class AppContext(Middleware):
    """Pushes an app context of ``app`` around every message a worker processes."""

    def __init__(self, app: Flask):
        self.app = app
        self._local = threading.local()

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
    not run); one whose job row does not exist is dead-lettered. After it ran,
    ``outcomes.decide`` says how the attempt ended and ``outcomes.record`` writes
    it, before the message is acked, retried or dead-lettered. Every write goes
    through ``durable.write``: none is skipped because the database blinked.

    The retry policy comes from the job row and the configuration, not from the
    message, so a rescued copy or an old message counts its retries right."""

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
            logger.warning(
                "%d job(s) still running at the end of the shutdown timeout; "
                "they are taken over once this worker's lease expires",
                busy,
            )
        self.lease.stop(release=not busy)

    def before_nack(self, broker, message):
        """The worker dead-letters a message for an unknown actor before any
        processing starts; fail its job, if it has one, so the admin page shows it."""
        if message.actor_name in broker.actors:
            return
        with self.app_context.app.app_context():
            error = ActorNotFound(f"no actor named {message.actor_name[:100]!r}")
            durable.write(
                state.fail_unrunnable,
                state.Unrunnable(message.message_id, message.actor_name, error),
            )

    def before_process_message(self, broker, message):
        _set_claim(None)
        self._wait_for_lease(message)
        request = StartAttempt(
            message.message_id,
            series=message.options.get("series", 0),
            worker_id=self.lease.id if self.lease is not None else "unregistered",
            token=uuid.uuid4().hex,
            actor=message.actor_name,
            args=list(message.args),
        )
        try:
            claim = durable.write(attempts.start_attempt, request)
        except (state.JobNotFound, attempts.MessageMismatch) as refused:
            logger.error(
                "message %s refused (%s); dead-lettering it",
                message.message_id,
                type(refused).__name__,
            )
            message.fail()
            raise SkipMessage() from None
        except Exception as error:
            # Not an outage (durable.write waits those out): never run unclaimed,
            # and leave the job in a state that says why.
            logger.critical("could not claim job %s; failing it", message.message_id, exc_info=True)
            _write_fallback(outcomes.fail_unclaimable, Unclaimable(message.message_id, error))
            message.fail()
            raise SkipMessage() from None
        if claim is None:
            logger.info("job %s is not runnable now; skipping its message", message.message_id)
            raise SkipMessage()
        if self.lease is not None:
            self.lease.note_claim(message.queue_name, claim.published_at)
        _set_claim(claim)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        claim = attempts.current_claim.get()
        _set_claim(None)
        if claim is None:  # not started
            return
        policy = RetryPolicy.from_config(self.app_context.app.config)
        outcome = outcomes.decide(claim, result=result, error=exception, policy=policy)
        still_owned = _record(outcome)
        if outcome.status is JobStatus.FAILED:
            message.fail()  # a cancelled one is acknowledged: it is no dead letter
        elif outcome.status is JobStatus.RETRYING and still_owned:
            # Published only once ``retrying`` is committed, so the retry can never
            # start before its job says it may. Should the publish fail, the job
            # stays ``retrying`` and the rescue publishes it (app/maintenance/rescue.py).
            retry = message.copy(options={"retries": claim.retries + 1})
            try:
                broker.enqueue(retry, delay=outcome.delay_ms)
            except Exception:
                logger.warning(
                    "job %s: its retry was not published; the rescue will publish it",
                    claim.job_id,
                    exc_info=True,
                )

    def after_skip_message(self, broker, message):
        _set_claim(None)

    def _wait_for_lease(self, message) -> None:
        """Claim nothing while this process's lease is not live (just booted with
        the database away, or fenced): the message waits, unacked."""
        if self.lease is None or self.lease.live():
            return
        logger.warning("worker lease not live; job %s waits until it is", message.message_id)
        while not self.lease.wait_live(timeout=5) and not self.lease.stopped:
            pass


def _record(outcome: Outcome) -> bool:
    """Write an attempt's outcome; when the database refuses it for good, fail
    the job with what can always be stored, so it never stays running."""
    try:
        return durable.write(outcomes.record, outcome)
    except Exception as error:
        logger.error(
            "job %s: its outcome could not be recorded; failing it",
            outcome.claim.job_id,
            exc_info=True,
        )
        claim = outcome.claim
        if not _write_fallback(outcomes.fail_unrecorded, Unrecorded(claim, error)):
            _write_fallback(outcomes.fail_unrecorded, Unrecorded(claim, error, hooks=False))
        return False


def _write_fallback(change, request) -> bool:
    try:
        durable.write(change, request)
        return True
    except Exception:
        logger.critical("could not record the failure either", exc_info=True)
        return False


def _set_claim(claim: Claim | None) -> None:
    attempts.current_claim.set(claim)

"""Every kind of job, in one table: its actor, queue, retry policy, time limit,
and what else must change in the same transaction when its job fails for good,
is cancelled, or is queued again by hand.

Actors (``actors/``), the outbox, the state module and the admin pages all read
this table; nothing is registered as a side effect of importing a module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from flask import current_app


@dataclass(frozen=True)
class JobKind:
    actor: str
    queue: str
    # The config key of its automatic retries after the first attempt; None: never retried
    # (periodic work: the next tick is the retry).
    max_retries_setting: str | None
    time_limit_ms: int
    # "module:function" taking a list of job ids, run inside the transaction that claims
    # an attempt (``claimed``), records its success (``succeeded``), fails or
    # cancels the job for good (``given_up``), or queues it again (``requeued``):
    # what else changes with the job changes in the same commit.
    claimed: str | None = None
    succeeded: str | None = None
    given_up: str | None = None
    requeued: str | None = None

    @property
    def max_retries(self) -> int:
        if self.max_retries_setting is None:
            return 0
        return current_app.config[self.max_retries_setting]


HOUR_MS = 60 * 60 * 1000

KINDS = {
    kind.actor: kind
    for kind in (
        JobKind(
            "send_email",
            "emails",
            "EMAIL_MAX_RETRIES",
            # Above MAIL_DATA_TIMEOUT (600 s) and a few MAIL_TIMEOUTs: the limit must
            # not interrupt the wait for the server's answer to the end of DATA.
            20 * 60 * 1000,
            claimed="app.emails:count_attempt",
            succeeded="app.emails:mark_sent",
        ),
        # A million rows take well under two hours; Dramatiq's default 10 minutes would cut them.
        JobKind(
            "run_export",
            "exports",
            "EXPORT_MAX_RETRIES",
            2 * HOUR_MS,
            given_up="app.exports.service:mark_failed",
            requeued="app.exports.service:mark_queued",
        ),
        JobKind("resend_failed_emails", "maintenance", None, HOUR_MS),
        JobKind("cleanup", "maintenance", None, HOUR_MS),
    )
}
QUEUES = tuple(dict.fromkeys(kind.queue for kind in KINDS.values()))


def actor_options(actor: str) -> dict:
    """The options its ``@dramatiq.actor`` declares. Retry counts and backoff are
    not among them: the JobState middleware sets them on each message from the
    job row and the configuration, so no actor reads settings when imported."""
    kind = KINDS[actor]
    return {"actor_name": kind.actor, "queue_name": kind.queue, "time_limit": kind.time_limit_ms}


def run_hook(actor: str, hook: str, *job_ids: str) -> None:
    """Run the kind's ``claimed``, ``succeeded``, ``given_up`` or ``requeued``
    hook, if it has one, for jobs of that kind (a hook takes a list of ids, so
    that a group commit changes many rows in one statement)."""
    kind = KINDS.get(actor)
    target = getattr(kind, hook) if kind else None
    if target and job_ids:
        _resolve(target)(list(job_ids))


def _resolve(target: str) -> Callable[[str], None]:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)

"""Kinds of job: what each runs on, how it is retried, and what its domain changes
with it.

A kind is declared by its own domain (``app/emails.py`` declares ``send_email``),
with real functions as hooks. The app factory registers every kind the app runs
(``register``); the job system finds a kind by its actor's name in that registry
and never imports a domain. Nothing is registered as an effect of an import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import select

from app.db import db

if TYPE_CHECKING:
    from app.models import Job

# A hook takes the ids of jobs of its kind and changes what else must change with
# them, in the transaction that changes the jobs (so one statement serves a batch).
Hook = Callable[[Sequence[str]], None]

HOUR_MS = 60 * 60 * 1000


@dataclass(frozen=True)
class JobKind:
    actor: str
    queue: str
    time_limit_ms: int
    # The config key of its automatic retries after the first attempt; None: the
    # fixed ``retries`` (none for periodic work: the next tick is the retry).
    max_retries_setting: str | None = None
    retries: int = 0
    # Run in the transaction that claims an attempt, records its success, ends the
    # job without success for good (failed or cancelled), or queues it again by hand.
    on_claimed: Hook | None = None
    on_succeeded: Hook | None = None
    on_given_up: Hook | None = None
    on_requeued: Hook | None = None
    # What the job works on, for the admin's job page: names and rows for its template.
    subject: Callable[[Job], Mapping[str, Any]] | None = None
    # A running job of this kind can be cancelled: it stops at its next progress
    # write (``Job.cancel_requested``). Not an email: SMTP cannot take one back.
    stops_when_cancelled: bool = False

    @property
    def max_retries(self) -> int:
        if self.max_retries_setting is None:
            return self.retries
        return current_app.config[self.max_retries_setting]

    def actor_options(self) -> dict[str, Any]:
        """What its ``@dramatiq.actor`` declares. Retries are not among them: the
        worker decides them from the job row and the configuration
        (``app/jobs/outcome.py``), so no actor reads settings when imported."""
        return {
            "actor_name": self.actor,
            "queue_name": self.queue,
            "time_limit": self.time_limit_ms,
        }

    def claimed(self, job_ids: Sequence[str]) -> None:
        _run(self.on_claimed, job_ids)

    def succeeded(self, job_ids: Sequence[str]) -> None:
        _run(self.on_succeeded, job_ids)

    def given_up(self, job_ids: Sequence[str]) -> None:
        _run(self.on_given_up, job_ids)

    def requeued(self, job_ids: Sequence[str]) -> None:
        _run(self.on_requeued, job_ids)


def _run(hook: Hook | None, job_ids: Sequence[str]) -> None:
    if hook is not None and job_ids:
        hook(list(job_ids))


class JobKinds(Mapping[str, JobKind]):
    """The kinds an app runs, by actor name."""

    def __init__(self, kinds: Iterable[JobKind] = ()):
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds:
            self.add(kind)

    def add(self, kind: JobKind) -> None:
        known = self._kinds.get(kind.actor)
        if known is not None and known != kind:
            raise ValueError(f"two kinds of job named {kind.actor!r}")
        self._kinds[kind.actor] = kind

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind.queue for kind in self._kinds.values()))

    def __getitem__(self, actor: str) -> JobKind:
        return self._kinds[actor]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


def register(app: Flask, *kinds: JobKind) -> JobKinds:
    registry = app.extensions.setdefault("job_kinds", JobKinds())
    for kind in kinds:
        registry.add(kind)
    return registry


def registry(app: Flask | None = None) -> JobKinds:
    app = app or current_app
    return app.extensions.setdefault("job_kinds", JobKinds())


def of(actor: str) -> JobKind:
    """The kind of the actor's jobs in the current app; an actor of no registered
    kind (a message naming an unknown actor) has no hooks."""
    kind = registry().get(actor)
    return kind if kind is not None else JobKind(actor, queue="", time_limit_ms=0)


def subject_row(model, job: Job):
    """The row a job works on (an email, an export): named by its first argument,
    or pointing at the job."""
    if job.args and isinstance(job.args[0], str):
        row = db.session.get(model, job.args[0])
        if row is not None:
            return row
    return db.session.scalar(select(model).where(model.job_id == job.id))

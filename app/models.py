"""The schema: SQLAlchemy 2.0 typed models. Alembic migrations in ``migrations/``
create and change it; never ``create_all`` outside tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Model, UTCDateTime, utcnow
from app.states import UNFINISHED_EXPORTS, ExportStatus, JobStatus

# The states as plain strings, for ``Literal[...]`` fields (app/api); code that
# asks which states there are iterates the enums of app/states.py.
JOB_STATUSES = tuple(status.value for status in JobStatus)
EXPORT_STATUSES = tuple(status.value for status in ExportStatus)
EXPORT_FORMATS = ("csv", "json", "xlsx")
EXPORT_KINDS = ("posts",)


def new_id() -> str:
    return str(uuid.uuid4())


def _status_in(states) -> str:
    """SQL text of ``status IN ('a', 'b')``, for constraints and index conditions."""
    return "status IN ({})".format(", ".join(f"'{state}'" for state in states))


class User(Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Kept in the session cookie at sign-in; signing out bumps it, which ends
    # every session signed with the old value, copies of the cookie included.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Model):
    """A bearer token. Only its SHA-256 is stored: a leaked table grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # API_TOKEN_TTL_DAYS after issue; a revoked token's row is deleted.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    user: Mapped[User] = relationship(lazy="joined")


# The jobs the relay publishes (``outbox.unpublished``).
UNPUBLISHED = "published_at IS NULL AND status = 'queued'"


class Job(Model):
    """One unit of background work; its id is the Dramatiq message id.

    ``published_at`` is the outbox marker: NULL while the broker has not yet
    confirmed the message (see ``app/jobs/outbox.py``)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_status_in(JobStatus), name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_jobs_created", "created_at", "id"),
        # On PostgreSQL it also holds each job's queue: the overview's queue depths
        # count the waiting jobs from it alone (migration 0014).
        Index(
            "ix_jobs_status_created",
            "status",
            "created_at",
            "id",
            postgresql_include=["queue"],
        ),
        Index("ix_jobs_user_created", "user_id", "created_at", "id"),
        Index("ix_jobs_actor_status_created", "actor", "status", "created_at", "id"),
        # The admin overview (app/admin/overview.py): what finished in a window, and
        # on PostgreSQL all it reads of each job (migration 0014).
        Index(
            "ix_jobs_finished",
            "finished_at",
            "actor",
            "status",
            postgresql_include=["attempts", "started_at", "created_at"],
        ),
        # On PostgreSQL, migration 0005 also adds a trigram index for the admin search.
        # Partial: a state change writes an entry only where a row is admitted.
        Index(
            "ix_jobs_unpublished",
            "created_at",
            "id",
            postgresql_where=text(UNPUBLISHED),
            sqlite_where=text(UNPUBLISHED),
        ),
        Index(
            "uq_jobs_unique_key",
            "unique_key",
            unique=True,
            postgresql_where=text("unique_key IS NOT NULL"),
            sqlite_where=text("unique_key IS NOT NULL"),
        ),
        # The scheduled jobs by when they are due: only they enter it.
        Index(
            "ix_jobs_scheduled",
            "scheduled_for",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        # The error groups (app/error_groups.py): only jobs with an error enter it,
        # and on PostgreSQL it holds all they read (migration 0014).
        Index(
            "ix_jobs_error_groups",
            "status",
            "error_group",
            "finished_at",
            postgresql_where=text("error_group IS NOT NULL"),
            sqlite_where=text("error_group IS NOT NULL"),
            postgresql_include=["created_at", "id"],
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    args: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every manual retry; each message carries the series it was sent
    # for, so a copy from an earlier series (say, from the dead-letter queue) can
    # never run the job again (see attempts.start_attempt).
    series: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Automatic retries spent in this series: every message carries it as
    # Dramatiq's ``retries`` option, so a rescued copy keeps the count.
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The worker process running the job (see ``Worker``): its lease is the
    # job's lease. Copies of the message never start a job whose lease is live.
    worker_id: Mapped[str | None] = mapped_column(String(100))
    # A token unique to the attempt that claimed the job: every later write of
    # that attempt names it, so an attempt whose lease was taken over can no
    # longer change the job (and a claim whose commit was lost can be recognised).
    claim: Mapped[str | None] = mapped_column(String(32))
    # Times the rescue republished the job since a worker last claimed it; each
    # rescue waits four times longer than the last (see app/maintenance/rescue.py).
    rescues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Periodic jobs carry "schedule@tick"; the unique index makes a second
    # enqueue of the same tick fail, even from two schedulers at once.
    unique_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a ``scheduled`` job is due: the relay queues it then (app/jobs/state.py).
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The error's group, written with it: its actor, type and masked message
    # hashed (app/error_groups.py), so that grouping a million jobs reads an index.
    error_group: Mapped[str | None] = mapped_column(String(16))
    # What people remember a job by beyond its arguments, for the admin search
    # (app/job_search.py): an email job's recipient and subject, written with it.
    about: Mapped[str | None] = mapped_column(Text)
    # Set when a cancel reaches a running job whose kind can stop part way (an
    # export): its attempt stops at its next progress write (``control.cancel``).
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    result: Mapped[dict | None] = mapped_column(JSON)

    # The attempts that ended otherwise than by succeeding; ``history`` has them all.
    recorded_attempts: Mapped[list[JobAttempt]] = relationship(
        back_populates="job",
        order_by="JobAttempt.attempt",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def history(self) -> list[JobAttempt | AttemptInRow]:
        """One entry per attempt. An attempt lives in the job row while it runs,
        and stays there when it succeeds: only an attempt that failed or was
        interrupted has a row of its own (``app/jobs/attempts.py``), so the
        usual job, which succeeds at once, writes none."""
        rows: list[JobAttempt | AttemptInRow] = list(self.recorded_attempts)
        in_row = self.status in (JobStatus.RUNNING, JobStatus.SUCCEEDED) and self.attempts > 0
        if in_row and not any(row.attempt == self.attempts for row in rows):
            running = self.status == JobStatus.RUNNING
            rows.append(
                AttemptInRow(
                    attempt=self.attempts,
                    started_at=self.started_at,
                    finished_at=None if running else self.finished_at,
                    outcome=str(self.status),
                )
            )
        return rows


class JobAttempt(Model):
    """One row per attempt at a job, with how it ended."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        # The admin overview's retries per minute (app/admin/overview.py).
        Index(
            "ix_job_attempts_finished",
            "finished_at",
            postgresql_include=["job_id", "attempt", "outcome"],
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running, succeeded, failed (this attempt raised), interrupted (its worker died)
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="recorded_attempts")


@dataclass(frozen=True)
class AttemptInRow:
    """A job's latest attempt as its job row holds it (see ``Job.history``)."""

    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


class Worker(Model):
    """A live worker process. Its heartbeat renews the lease of every job it
    runs in one write: a job is owned while its worker's ``expires_at`` is ahead.

    ``claimed`` maps each queue to the latest ``published_at`` among the jobs the
    process has claimed from it: RabbitMQ queues are FIFO, so a queued job
    published well before that mark was overtaken, and its message is lost."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    queues: Mapped[list] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed: Mapped[dict] = mapped_column(JSON, default=dict)


class Email(Model):
    """An email and its delivery. Its state is derived from ``sent_at`` and its
    current job (see ``app/emails.py``), so the two can never disagree."""

    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_emails_user_created", "user_id", "created_at"),
        # The failed emails page, newest first (app/admin/emails.py).
        Index("ix_emails_created", "created_at", "id"),
        # USER_EMAILS_PER_HOUR counts a user's own emails of the last hour here (app/quotas.py).
        Index("ix_emails_user_queued_created", "user_id", "user_queued", "created_at"),
        # A repeated batch's Idempotency-Key answers its emails in order (app/emails.py).
        Index(
            "ix_emails_batch",
            "batch_id",
            "batch_index",
            sqlite_where=text("batch_id IS NOT NULL"),
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    to: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resend_rounds: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the request that came with the key: the same key with another
    # request is refused rather than answered with this email.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # A batch that came with a key: each of its emails names the email that
    # holds the key (the first) and its place in the batch.
    batch_id: Mapped[str | None] = mapped_column(String(36))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    # A file under EXPORT_DIR sent as an attachment (an export's email).
    attachment: Mapped[str | None] = mapped_column(String(255))
    # True when the user's own request queued it, so that it counts against
    # USER_EMAILS_PER_HOUR; False for those the app queues (an export's delivery).
    user_queued: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job | None] = relationship()


class Export(Model):
    """A file of a user's data, written by ``run_export`` and delivered by email.

    At most one unfinished export per user and kind (``UNFINISHED_EXPORTS``,
    the rule ``app.exports.service.unfinished`` asks in queries): a partial
    unique index makes the database refuse a second one, however requests
    interleave. Migration 0002 creates it with the same condition."""

    __tablename__ = "exports"
    __table_args__ = (
        CheckConstraint(_status_in(ExportStatus), name="status"),
        Index(
            "uq_exports_one_unfinished",
            "user_id",
            "kind",
            unique=True,
            sqlite_where=text(_status_in(UNFINISHED_EXPORTS)),
            postgresql_where=text(_status_in(UNFINISHED_EXPORTS)),
        ),
        Index("ix_exports_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.QUEUED)
    rows: Mapped[int | None] = mapped_column(Integer)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    file_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[Job | None] = relationship()


class SchedulerLease(Model):
    """Which scheduler process may enqueue periodic jobs, until when."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduleState(Model):
    """The last tick each periodic job ran for, and how it went."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    interval_s: Mapped[int] = mapped_column(Integer)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_job_id: Mapped[str | None] = mapped_column(String(36))
    # "enqueued", "ok: published 3 jobs", or "error: ..." for work done in the scheduler
    last_outcome: Mapped[str | None] = mapped_column(Text)


class LoginThrottle(Model):
    """Failed sign-ins per email, to slow down password guessing."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_last_failure", "last_failure_at"),)

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInBackoff(Model):
    """Failed sign-ins per client and per (account, client) pair (see
    app/login_throttle.py), keyed by a hash of what is counted: no address is
    stored in clear."""

    __tablename__ = "sign_in_backoff"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Post(Model):
    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_user_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BulkAction(Model):
    """What a ``bulk_action`` job does (its message carries only its job id):
    the action, the filter it was started with, and how far it has got. The
    cursor and the counts move in the transaction of each batch, so a resumed
    job goes on where the last committed batch ended."""

    __tablename__ = "bulk_actions"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    # {status, actor, q, group}: the admin list's filter (app/bulk_actions.py)
    filters: Mapped[dict] = mapped_column(JSON)
    # Only jobs created until the action was asked for: it ends, whatever is queued meanwhile.
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    matched: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    after_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    after_id: Mapped[str | None] = mapped_column(String(36))
    # The audit entry that asked for it, which gets the outcome when it ends.
    audit_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("audit_log.id", ondelete="SET NULL"),
    )


class AuditEntry(Model):
    """One admin action: who, what, on what (job ids or a filter), and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Kept as it was when the action was taken: the account may be renamed or removed.
    user_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[dict] = mapped_column(JSON)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class PausedQueue(Model):
    """A queue an admin paused: while its row is here no attempt starts on it, on
    any worker (the claim checks it in the database), and its jobs wait in the
    database, not in RabbitMQ (``app/queues.py``)."""

    __tablename__ = "paused_queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

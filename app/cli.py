"""``flask --app app ...`` commands (``db`` comes from Flask-Migrate)."""

from __future__ import annotations

import time

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit, auth, bulk_actions, queues, seed
from app.db import db
from app.jobs import control, outbox
from app.jobs.listing import newest_first
from app.maintenance import relay as relay_service
from app.models import Job, User
from app.scheduling import status
from app.states import FINISHED, JobStatus
from app.text import printable

users_cli = AppGroup("users", help="Manage users.")
jobs_cli = AppGroup("jobs", help="Inspect and move background jobs.")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True, help="The user's password.")
@click.option("--admin", is_flag=True, help="Give the user access to the admin pages.")
def create_user(email: str, password: str, admin: bool) -> None:
    """Create a user."""
    try:
        auth.check_new_user(email, password)
    except auth.InvalidCredentials as invalid:
        raise click.UsageError(str(invalid)) from None
    try:
        user = auth.create_user(email, password, admin=admin)
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"a user with the email {email} already exists") from None
    click.echo(f"created {'admin' if admin else 'user'} {user.email} (id {user.id})")


@jobs_cli.command("list")
# The strings: click.Choice would take an enum's names (QUEUED), not its values.
@click.option("--status", type=click.Choice([state.value for state in JobStatus]))
@click.option("--actor")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def list_jobs(status: str | None, actor: str | None, limit: int) -> None:
    """One line per job, newest first."""
    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    if actor:
        query = query.where(Job.actor == actor)
    jobs = db.session.scalars(newest_first(query, limit=limit)).all()
    if not jobs:
        click.echo("No jobs match.")
    for job in jobs:
        error = f"  {job.error_type}: {job.error_message}" if job.error_type else ""
        # Error texts come from outside (SMTP replies): no escape codes reach the terminal.
        click.echo(
            printable(
                f"{job.id}  {job.created_at:%Y-%m-%d %H:%M:%S}  {job.status:<9}  "
                f"{job.actor:<20}  attempts={job.attempts}{error}"
            )
        )


@jobs_cli.command("retry")
@click.argument("job_id", required=False)
@click.option("--all-failed", is_flag=True, help="Retry every failed job (of --actor, if given).")
@click.option("--actor", help="With --all-failed: only this actor's jobs.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="With --all-failed: follow the bulk action until a worker has finished it.",
)
def retry(job_id: str | None, all_failed: bool, actor: str | None, wait: bool) -> None:
    """Retry a failed or cancelled job, or every failed one: as the admin page's Retry
    and its "Retry all matching" (a bulk action, run by a worker)."""
    if bool(job_id) == all_failed:
        raise click.UsageError("give either JOB_ID or --all-failed")
    if job_id:
        try:
            control.retry(job_id, also=audit.Trail("retry", {"job_ids": [job_id]}, size=1))
        except control.JobNotFound:
            raise click.ClickException(f"no job {job_id}") from None
        except control.JobStateConflict as conflict:
            raise click.ClickException(
                f"job {job_id} is {conflict.status}; only failed or cancelled jobs can be retried"
            ) from None
        click.echo(f"job {job_id} queued")
        return
    filters = bulk_actions.Filters(status=JobStatus.FAILED.value, actor=actor)
    bulk = bulk_actions.start("retry", filters, user_id=None)
    click.echo(
        f"bulk action {bulk.id} queued: retry every failed job{f' of {actor}' if actor else ''}"
    )
    if not wait:
        return
    try:
        job = _follow(bulk.id)
    except KeyboardInterrupt:
        raise click.ClickException(
            f"stopped following; bulk action {bulk.id} goes on"
            " (flask jobs list --actor bulk_action)"
        ) from None
    if job.status != JobStatus.SUCCEEDED:
        raise click.ClickException(f"bulk action {bulk.id} {job.status}: {job.error_message}")
    result = job.result or {}
    click.echo(
        f"queued {result.get('done', 0)} failed job(s); skipped {result.get('skipped', 0)} "
        "(moved on meanwhile, or an export blocked by another unfinished one)"
    )


# How often ``--wait`` looks at a bulk action, and prints its progress.
FOLLOW_INTERVAL_S = 0.2
PROGRESS_EVERY_S = 5.0


def _follow(job_id: str):
    """Wait until a worker has finished the job, printing its progress now and
    then; its row's status, progress, result and error."""
    shown = time.monotonic()
    while True:
        job = db.session.execute(
            select(Job.status, Job.progress, Job.result, Job.error_message).where(Job.id == job_id)
        ).one()
        db.session.rollback()  # no transaction (on SQLite, no write lock) while it waits
        if job.status in FINISHED:
            return job
        if time.monotonic() - shown >= PROGRESS_EVERY_S:
            shown = time.monotonic()
            click.echo(f"  {job.status}, {job.progress}% done")
        time.sleep(FOLLOW_INTERVAL_S)


@jobs_cli.command("pause")
@click.argument("queue")
def pause(queue: str) -> None:
    """Pause QUEUE: no new attempt starts on it, on any worker, until it is resumed."""
    try:
        changed = queues.pause(queue)
    except queues.UnknownQueue:
        raise click.ClickException(f"no queue {queue}; the queues are {_queue_names()}") from None
    click.echo(f"queue {queue} {'paused' if changed else 'was paused already'}")


@jobs_cli.command("resume")
@click.argument("queue")
def resume(queue: str) -> None:
    """Resume QUEUE: its waiting jobs are published again within a relay interval."""
    try:
        changed = queues.resume(queue)
    except queues.UnknownQueue:
        raise click.ClickException(f"no queue {queue}; the queues are {_queue_names()}") from None
    click.echo(f"queue {queue} {'resumed' if changed else 'was not paused'}")


def _queue_names() -> str:
    return ", ".join(queues.known())


@jobs_cli.command("relay")
def relay() -> None:
    """Publish every job that is committed but not yet handed to the broker."""
    total = 0
    while published := relay_service.relay()["published"]:
        total += published
    pending = db.session.scalar(select(db.func.count()).where(outbox.unpublished()))
    click.echo(f"published {total} job(s); {pending} still waiting for the broker")
    if pending:
        raise SystemExit(1)


@click.command("seed-posts")
@with_appcontext
@click.argument("email")
@click.argument("count", metavar="N", type=click.IntRange(1, 100_000_000))
def seed_posts(email: str, count: int) -> None:
    """Bulk-insert N demo posts for the user with EMAIL."""
    user = db.session.scalar(select(User).where(User.email == auth.normalize_email(email)))
    if user is None:
        raise click.ClickException(f"no user with the email {email}")
    started = time.monotonic()
    seed.seed_posts(user.id, count)
    click.echo(f"inserted {count} posts for {user.email} in {time.monotonic() - started:.1f}s")


schedules_cli = AppGroup("schedules", help="The periodic jobs run by scheduler.py.")


@schedules_cli.command("list")
def list_schedules() -> None:
    """Each periodic job with its interval, last run, next run and last outcome."""
    current = status.leader()
    click.echo(f"leader: {current['holder'] if current else 'none (no scheduler running?)'}")
    for row in status.schedule_rows():
        last = f"{row['last_run_at']:%Y-%m-%d %H:%M:%S}" if row["last_run_at"] else "never"
        warning = (
            f"  WARNING: has not run for over {2 * row['interval_s']}s" if row["stale"] else ""
        )
        click.echo(
            printable(
                f"{row['name']:<22} every {row['interval_s']:>5}s  last {last}  "
                f"next {row['next_run_at']:%Y-%m-%d %H:%M:%S}  {row['last_outcome']}{warning}"
            )
        )


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(schedules_cli)
    app.cli.add_command(seed_posts)

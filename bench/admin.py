"""How fast the admin pages and the admin's API answer over a million jobs.

Fills a fresh PostgreSQL database with N jobs in mixed states (COPY), each
``send_email`` job with its email (a recipient of its own, one of a few
subjects) and each failed job with its error group, then times, through the
Flask test client signed in as an admin (or with an admin's token): the first
page and a deep page of ``/admin/jobs?status=failed``, searches in errors and
arguments, searches by an email's recipient and subject on ``/admin/jobs``,
``/admin/emails`` and ``GET /api/jobs``, and ``GET /api/errors``. Prints the
median and 95th percentile of each over repeated requests.

    .venv/bin/python -m bench.admin [N]     # default: 1000000
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

os.environ.setdefault("BROKER_URL", "stub://")

from flask_migrate import upgrade
from sqlalchemy import func, select, text

from app import auth, create_app
from app.db import db
from app.error_groups import group_of
from app.jobs.listing import encode_cursor
from app.models import Email, Job
from tests.support.services import PostgresDatabase

REPEAT = 40
WAITING = ("queued", "retrying")  # never started (a retrying one's attempt is in job_attempts)
STATUSES = (
    ["succeeded"] * 75
    + ["failed"] * 15
    + ["queued"] * 4
    + ["cancelled"] * 3
    + ["retrying"] * 2
    + ["running"]
)
ERRORS = [
    ("SMTPDataError", "(451, b'4.3.0 mailbox busy, try again later')"),
    ("RecipientRefused", "bad{n}@example.com: 550 5.1.1 no such user"),
    ("ConnectionRefusedError", "[Errno 111] Connection refused"),
    ("TimeoutError", "timed out after 30 s"),
]
# An email's subject, by its number: a word that a fifth of them share, the
# same few texts over and over, and numbers that make most of them differ.
SUBJECTS = [
    "Invoice {n}",
    "Welcome to jobsapp",
    "Password reset",
    "Your order {n} has shipped",
    "Weekly digest",
]
# The one recipient the recipient searches look for; every other email goes to
# an address of its own, user{n}@example.com.
ALICE = "alice.martin@example.net"


def fill(n: int, *, user_id: int) -> None:
    """N jobs, and an email of ``user_id``'s for each ``send_email`` one; the
    email in the middle of the table (failed) goes to ALICE."""
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=60)
    alice = n // 2 + 1 if (n // 2) % 5 == 0 else n // 2
    raw = db.engine.raw_connection()
    emails: list[tuple] = []
    attempts: list[tuple] = []
    try:
        cursor = raw.cursor()
        columns = (
            "id, actor, queue, args, status, progress, attempts, max_retries, series,"
            " created_at, published_at, started_at, finished_at, error_type, error_message,"
            " error_group, about"
        )
        with cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for number in range(n):
                status = "failed" if number == alice else rng.choice(STATUSES)
                actor, queue = ("send_email", "emails") if number % 5 else ("run_export", "exports")
                created = start + timedelta(seconds=number * 5.184)  # 60 days over 1M jobs
                error_type = error_message = error_group = None
                if status in ("failed", "retrying"):
                    error_type, error_message = ERRORS[number % len(ERRORS)]
                    error_message = error_message.format(n=number)
                    # As the app writes it with the error (app/error_groups.py).
                    error_group = group_of(actor, error_type, error_message)
                finished = (
                    created + timedelta(seconds=2) if status in ("succeeded", "failed") else None
                )
                job_id = str(uuid.UUID(int=rng.getrandbits(128)))
                argument = str(uuid.UUID(int=rng.getrandbits(128)))
                started = created + timedelta(seconds=0.5) if status not in WAITING else None
                about = None
                if actor == "send_email":
                    to = ALICE if number == alice else f"user{number}@example.com"
                    subject = SUBJECTS[number % 7 % len(SUBJECTS)].format(n=number)
                    sent = finished if status == "succeeded" else None
                    emails.append((argument, user_id, job_id, to, subject, created, sent))
                    about = f"{to} {subject}"  # as app/email_queue.py writes it
                if error_type:  # the attempt that failed (the overview's "retried")
                    attempts.append((job_id, created, error_type))
                copy.write_row(
                    (
                        job_id,
                        actor,
                        queue,
                        json.dumps([argument]),
                        status,
                        100 if status == "succeeded" else 0,
                        1,
                        5,
                        0,
                        created,
                        created,
                        started,
                        finished,
                        error_type,
                        error_message,
                        error_group,
                        about,
                    )
                )
        with cursor.copy(
            "COPY job_attempts (job_id, attempt, started_at, finished_at, outcome, error_type)"
            " FROM STDIN"
        ) as copy:
            for job_id, created, error_type in attempts:
                start_s = created + timedelta(seconds=0.5)
                copy.write_row(
                    (job_id, 1, start_s, start_s + timedelta(seconds=1), "failed", error_type)
                )
        columns = (
            'id, user_id, job_id, "to", subject, body, message_id, attempts, resend_rounds,'
            " user_queued, created_at, sent_at"
        )
        with cursor.copy(f"COPY emails ({columns}) FROM STDIN") as copy:
            for email_id, owner, job_id, to, subject, created, sent in emails:
                copy.write_row(
                    (
                        email_id,
                        owner,
                        job_id,
                        to,
                        subject,
                        "Hello",
                        f"<{email_id}@bench.example>",
                        1,
                        0,
                        True,
                        created,
                        sent,
                    )
                )
        raw.commit()
    finally:
        raw.close()
    # What autovacuum does soon after a bulk load in production: statistics, and
    # the visibility map that lets counts run from the indexes alone. No
    # transaction of this process may stay open meanwhile: its snapshot would
    # keep VACUUM from marking the new rows visible to all.
    db.session.commit()
    connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.execute(text("VACUUM ANALYZE jobs"))
    connection.execute(text("VACUUM ANALYZE emails"))
    connection.execute(text("VACUUM ANALYZE job_attempts"))
    connection.close()


def timed(client, url: str, headers: dict | None = None, before=None) -> list[float]:
    assert client.get(url, headers=headers).status_code == 200  # warm up
    samples = []
    for _ in range(REPEAT):
        if before is not None:
            before()
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return samples


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    database = PostgresDatabase()
    app = create_app({"DATABASE_URL": database.url(), "WTF_CSRF_ENABLED": False})
    try:
        with app.app_context():
            upgrade()
            admin = auth.create_user("bench-admin@example.com", "pw", admin=True)
            token = {"Authorization": f"Bearer {auth.issue_token(admin)}"}
            sender = auth.create_user("bench-sender@example.com", "pw").id
            started = time.perf_counter()
            fill(n, user_id=sender)
            emails = db.session.scalar(select(func.count()).select_from(Email))
            took = time.perf_counter() - started
            print(f"filled {n:,} jobs and {emails:,} emails in {took:.1f}s")
            failed = db.session.scalars(
                select(Job)
                .where(Job.status == "failed")
                .order_by(Job.created_at.desc(), Job.id.desc())
                .offset(100_000)
                .limit(1)
            ).first()
            deep_cursor = encode_cursor(failed)
            message = db.session.scalar(
                select(Job.error_message).where(Job.error_type == "RecipientRefused").limit(1)
            )
            assert message, "fill() made RecipientRefused failures"
            needle = message.split(":")[0]
        client = app.test_client()
        client.post("/login", data={"email": "bench-admin@example.com", "password": "pw"})
        failed_jobs = "/admin/jobs?status=failed"
        pages = {
            "first page, status=failed": failed_jobs,
            "deep page (100,000 rows in), status=failed": f"{failed_jobs}&cursor={deep_cursor}",
            f"search q={needle}": f"/admin/jobs?q={needle}",
            "search q=Connection refused, status=failed": f"{failed_jobs}&q=Connection+refused",
            "first page, no filter": "/admin/jobs",
            "search by recipient, q=ALICE": f"/admin/jobs?q={ALICE}",
            "search by subject word, q=invoice": "/admin/jobs?q=invoice",
            "/admin/emails first page": "/admin/emails",
            "/admin/emails q=ALICE": f"/admin/emails?q={ALICE}",
            "/admin/emails q=invoice": "/admin/emails?q=invoice",
            "overview /admin, its minute's first answer": "/admin",
            "overview /admin, later answers that minute": "/admin",
            "error groups /admin/errors": "/admin/errors",
        }
        calls = {
            "GET /api/jobs?q=ALICE": f"/api/jobs?q={ALICE}",
            "GET /api/jobs?q=invoice": "/api/jobs?q=invoice",
            "GET /api/errors": "/api/errors",
        }
        rows: list[tuple[str, str, dict | None]] = [
            (name, url, None) for name, url in pages.items()
        ]
        rows += [(name, url, token) for name, url in calls.items()]
        print(f"{'page':<48} {'median ms':>10} {'p95 ms':>8}")

        def first_of_its_minute() -> None:
            # The charts are computed once a minute per process: time that, not the copy.
            app.extensions.pop("admin_overview", None)

        for name, url, headers in rows:
            before = first_of_its_minute if "first answer" in name else None
            samples = timed(client, url, headers, before)
            p95 = statistics.quantiles(samples, n=20)[-1]
            print(f"{name:<48} {statistics.median(samples):>10.1f} {p95:>8.1f}", flush=True)
        body = client.get(pages[f"search q={needle}"]).get_data(as_text=True)
        assert re.search(re.escape(needle), body), "the search found nothing"
        found = client.get(calls["GET /api/jobs?q=ALICE"], headers=token).get_json()["items"]
        assert len(found) == 1, "the recipient search found other than the one email job"
        assert ALICE in client.get(pages["/admin/emails q=ALICE"]).get_data(as_text=True)
        assert client.get(calls["GET /api/errors"], headers=token).get_json()["items"]
    finally:
        with app.app_context():
            db.engine.dispose()
        database.drop()


if __name__ == "__main__":
    main()

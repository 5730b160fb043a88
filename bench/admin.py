"""How fast the admin jobs page answers over a million jobs.

Fills a fresh PostgreSQL database with N jobs in mixed states (COPY), then times,
through the Flask test client signed in as an admin, the first page and a deep
page of ``/admin/jobs?status=failed`` and a search in errors and arguments.
Prints the median and 90th percentile of each over repeated requests.

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
from sqlalchemy import select, text

from app import auth, create_app
from app.db import db
from app.jobs.listing import encode_cursor
from app.models import Job
from tests.support.services import PostgresDatabase

REPEAT = 25
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


def fill(n: int) -> None:
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=60)
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        columns = (
            "id, actor, queue, args, status, progress, attempts, max_retries, series,"
            " created_at, published_at, finished_at, error_type, error_message"
        )
        with cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for number in range(n):
                status = rng.choice(STATUSES)
                actor, queue = ("send_email", "emails") if number % 5 else ("run_export", "exports")
                created = start + timedelta(seconds=number * 5.184)  # 60 days over 1M jobs
                error_type = error_message = None
                if status in ("failed", "retrying"):
                    error_type, error_message = ERRORS[number % len(ERRORS)]
                    error_message = error_message.format(n=number)
                finished = (
                    created + timedelta(seconds=2) if status in ("succeeded", "failed") else None
                )
                copy.write_row(
                    (
                        str(uuid.UUID(int=rng.getrandbits(128))),
                        actor,
                        queue,
                        json.dumps([str(uuid.UUID(int=rng.getrandbits(128)))]),
                        status,
                        100 if status == "succeeded" else 0,
                        1,
                        5,
                        0,
                        created,
                        created,
                        finished,
                        error_type,
                        error_message,
                    )
                )
        raw.commit()
    finally:
        raw.close()
    # What autovacuum does soon after a bulk load in production: statistics, and
    # the visibility map that lets counts run from the indexes alone.
    connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.execute(text("VACUUM ANALYZE jobs"))
    connection.close()


def timed(client, url: str) -> list[float]:
    assert client.get(url).status_code == 200  # warm up
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(url)
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
            started = time.perf_counter()
            fill(n)
            print(f"filled {n:,} jobs in {time.perf_counter() - started:.1f}s")
            auth.create_user("bench-admin@example.com", "pw", admin=True)
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
        }
        print(f"{'page':<48} {'median ms':>10} {'p90 ms':>8}")
        for name, url in pages.items():
            samples = timed(client, url)
            p90 = statistics.quantiles(samples, n=10)[-1]
            print(f"{name:<48} {statistics.median(samples):>10.1f} {p90:>8.1f}", flush=True)
        body = client.get(pages[f"search q={needle}"]).get_data(as_text=True)
        assert re.search(re.escape(needle), body), "the search found nothing"
    finally:
        with app.app_context():
            db.engine.dispose()
        database.drop()


if __name__ == "__main__":
    main()

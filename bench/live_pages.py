"""What 1,000 open ``/`` pages cost the web while they poll ``/exports.json``.

Fills a fresh PostgreSQL database with N users, each with a few exports (one
running) and a page of recent emails, signs each one in (a session cookie of
their own), starts the web as deployed (gunicorn, deploy/gunicorn.conf.py, one
worker process), then plays N open pages: each round, every page sends one poll,
from 16 client threads over keep-alive connections. Twice: once as a page whose
rows moved (no If-None-Match: a full 200 with every row), once as a page whose
rows did not (If-None-Match with its ETag: a 304 without a body). Prints the
gunicorn worker's CPU per poll (utime + stime from /proc), the polls per second
one process answers, and the ratios.

    .venv/bin/python -m bench.live_pages [N]     # default: 1000
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("BROKER_URL", "stub://")

from flask_migrate import upgrade
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

from app import create_app
from app.db import db, utcnow
from app.models import Email, Export, Job, User
from bench import common
from bench.costs import cpu_ticks
from tests.support.services import PostgresDatabase

ROUNDS = 3
CLIENTS = 16
EXPORTS_PER_USER = 5
EMAILS_PER_USER = 20
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def fill(n: int) -> list[int]:
    """N users, each with EXPORTS_PER_USER exports (the newest running) and
    EMAILS_PER_USER sent emails, each with its job; their ids."""
    password = generate_password_hash("not used: sessions are signed directly")
    now = utcnow()
    users = [{"email": f"user{i}@example.com", "password_hash": password} for i in range(n)]
    ids = list(db.session.scalars(insert(User).returning(User.id), users))
    jobs, exports, emails = [], [], []
    for user_id in ids:
        for number in range(EXPORTS_PER_USER):
            running = number == EXPORTS_PER_USER - 1
            job_id, export_id = str(uuid.uuid4()), str(uuid.uuid4())
            created = now - timedelta(minutes=EXPORTS_PER_USER - number)
            jobs.append(_job(job_id, user_id, "run_export", running, created, export_id))
            exports.append(
                {
                    "id": export_id,
                    "user_id": user_id,
                    "job_id": job_id,
                    "kind": "posts",
                    "format": ("csv", "json", "xlsx")[number % 3],
                    "status": "running" if running else "succeeded",
                    "rows": 20_000 if running else 100_000 + number,
                    "bytes": None if running else 11_244_466 + number,
                    "file_name": None if running else f"{export_id}.csv",
                    "created_at": created,
                    "finished_at": None if running else created,
                }
            )
        for number in range(EMAILS_PER_USER):
            job_id, email_id = str(uuid.uuid4()), str(uuid.uuid4())
            created = now - timedelta(minutes=EMAILS_PER_USER - number)
            jobs.append(_job(job_id, user_id, "send_email", False, created, email_id))
            emails.append(
                {
                    "id": email_id,
                    "user_id": user_id,
                    "job_id": job_id,
                    "to": f"friend{number}@example.com",
                    "subject": f"Weekly report {number}",
                    "body": "Hello",
                    "message_id": f"<{job_id}@example.com>",
                    "attempts": 1,
                    "sent_at": created,
                    "user_queued": True,
                    "created_at": created,
                }
            )
    for model, rows in ((Job, jobs), (Export, exports), (Email, emails)):
        db.session.execute(insert(model), rows)
    db.session.commit()
    return ids


def _job(job_id, user_id, actor, running, created, subject_id) -> dict:
    return {
        "id": job_id,
        "user_id": user_id,
        "actor": actor,
        "queue": "exports" if actor == "run_export" else "emails",
        "args": [subject_id],
        "status": "running" if running else "succeeded",
        "progress": 20 if running else 100,
        "attempts": 1,
        "max_retries": 3,
        "created_at": created,
        "published_at": created,
        "started_at": created,
        "finished_at": None if running else created,
    }


def session_cookies(app, user_ids: list[int]) -> list[str]:
    """Each user's signed-in session, as the web signs it after /login."""
    serializer = app.session_interface.get_signing_serializer(app)
    return [serializer.dumps({"user_id": user_id, "version": 0}) for user_id in user_ids]


def polls(port: int, requests: list[dict], *, clients: int) -> tuple[float, dict]:
    """GET /exports.json with each of ``requests``' headers, from ``clients``
    threads over keep-alive connections: (seconds, statuses counted)."""
    pending = iter(requests)
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    barrier = threading.Barrier(clients + 1)

    def client():
        connection = http.client.HTTPConnection(common.HOST, port, timeout=60)
        barrier.wait()
        while True:
            with lock:
                headers = next(pending, None)
            if headers is None:
                break
            try:
                connection.request("GET", "/exports.json", headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                connection.close()
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, statuses


def measure(name, port, worker_pid, requests) -> dict:
    before = cpu_ticks(worker_pid, children=False)
    seconds, statuses = polls(port, requests, clients=CLIENTS)
    cpu_ms = (cpu_ticks(worker_pid, children=False) - before) * TICK_MS
    return {
        "name": name,
        "polls": len(requests),
        "statuses": statuses,
        "cpu_ms_per_poll": cpu_ms / len(requests),
        "polls_per_s": len(requests) / seconds,
    }


def main(n: int) -> None:
    database = PostgresDatabase()
    secret = "bench-live-pages-" + "x" * 32
    app = create_app({"DATABASE_URL": database.url(), "SECRET_KEY": secret})
    log_dir = Path(tempfile.mkdtemp(prefix="bench-live-pages-"))
    web = None
    try:
        with app.app_context():
            upgrade()
            started = time.monotonic()
            user_ids = fill(n)
            print(
                f"filled {n:,} users, {n * EXPORTS_PER_USER:,} exports and"
                f" {n * EMAILS_PER_USER:,} emails in {time.monotonic() - started:.1f}s"
            )
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
            db.engine.dispose()
        cookies = session_cookies(app, user_ids)
        port = common.free_port()
        env = {
            "DATABASE_URL": database.url(),
            "SECRET_KEY": secret,
            "BROKER_URL": "stub://",
            "WEB_CONCURRENCY": "1",
            "LOG_FORMAT": "text",
        }
        web = common.gunicorn(
            "web",
            "app:create_app()",
            port=port,
            env=env,
            log_dir=log_dir,
            args=["-c", str(common.ROOT / "deploy" / "gunicorn.conf.py")],
        )
        [worker_pid] = web.children()
        base = [{"Cookie": f"session={cookie}", "Accept": "application/json"} for cookie in cookies]

        # Every page's first poll: its rows and their ETag (and a warm process)
        etags = []
        for headers in base:
            connection = http.client.HTTPConnection(common.HOST, port, timeout=60)
            connection.request("GET", "/exports.json", headers=headers)
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 200 and len(body["items"]) == EXPORTS_PER_USER, body
            etags.append(response.headers["ETag"])
            connection.close()

        full = [dict(headers) for headers in base] * ROUNDS
        unchanged = [
            {**headers, "If-None-Match": etag} for headers, etag in zip(base, etags, strict=True)
        ] * ROUNDS
        results = [
            measure("moved: full 200", port, worker_pid, full),
            measure("unchanged: 304", port, worker_pid, unchanged),
        ]
    finally:
        if web is not None:
            web.stop()
        database.drop()

    print(
        f"{n:,} open pages, {ROUNDS} polls each, {CLIENTS} client threads;"
        " gunicorn gthread, 1 worker process, 8 threads"
    )
    print(f"{'answer':<20}{'polls':>8}{'statuses':>20}{'CPU ms/poll':>14}{'polls/s':>10}")
    for row in results:
        statuses = ",".join(f"{k}x{v}" for k, v in sorted(row["statuses"].items()))
        print(
            f"{row['name']:<20}{row['polls']:>8,}{statuses:>20}"
            f"{row['cpu_ms_per_poll']:>14.2f}{row['polls_per_s']:>10.0f}"
        )
    full_row, unchanged_row = results
    cpu_ratio = unchanged_row["cpu_ms_per_poll"] / full_row["cpu_ms_per_poll"]
    rate_ratio = unchanged_row["polls_per_s"] / full_row["polls_per_s"]
    print(f"304 / 200: CPU per poll {cpu_ratio:.2f}, polls per second {rate_ratio:.2f}")
    # What N pages ask of one process: every 0.5 s while rows move; every 5 s once
    # they stand still (the page's backoff while 304s come).
    for label, interval, row in (("moving, every 0.5 s", 0.5, full_row),
                                 ("still, every 5 s", 5.0, unchanged_row)):  # fmt: skip
        rate = n / interval
        print(
            f"{n:,} pages {label}: {rate:,.0f} polls/s,"
            f" {rate * row['cpu_ms_per_poll'] / 1000:.2f} CPU cores of the web"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)

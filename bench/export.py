"""Export throughput against PostgreSQL's own COPY, and the worker's peak memory.

For each N: seed N posts in a fresh PostgreSQL database, export them to CSV
through the real ``run_export`` actor in a real ``dramatiq`` worker process (on a
RabbitMQ vhost of its own), then, in the same run, time
``COPY (SELECT ...) TO STDOUT WITH CSV`` over the same rows.

    .venv/bin/python -m bench.export [N ...]     # default: 100000 1000000
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BROKER_URL", "stub://")  # this process only publishes, below

import psycopg

from app import auth, create_app
from app.db import db
from app.exports import service
from app.jobs.broker import broker_of
from app.models import Job
from app.seed import seed_posts
from bench.project import NO_QUOTAS
from tests.support.services import PostgresDatabase, RabbitVhost
from tests.support.smtp import SmtpServer
from tests.support.worker import WorkerProcess, wait_until


def peak_rss_mb(pgid: int) -> float:
    """The highest VmHWM (peak resident memory) among the worker's processes."""
    peak = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or os.getpgid(int(proc.name)) != pgid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ProcessLookupError):
            continue
    return peak / 1024


def copy_rate(url: str, user_id: int, rows: int, path: Path) -> float:
    query = (
        f"COPY (SELECT id, body, created_at FROM posts WHERE user_id = {int(user_id)}"
        " ORDER BY id) TO STDOUT WITH CSV HEADER"
    )
    with psycopg.connect(url) as connection, open(path, "wb") as out:
        started = time.perf_counter()
        with connection.cursor().copy(query) as copy:
            for chunk in copy:
                out.write(chunk)
        return rows / (time.perf_counter() - started)


def run(n: int, workdir: Path) -> dict:
    database, vhost, smtp = PostgresDatabase(), RabbitVhost(), SmtpServer().start()
    export_dir = workdir / f"exports-{n}"
    app = create_app(
        {
            "DATABASE_URL": database.url(),
            "EXPORT_DIR": str(export_dir),
            "MAIL_PORT": smtp.port,
            "BROKER_URL": vhost.url(),  # this process publishes there, as the web would
            **NO_QUOTAS,
        }
    )
    worker = None
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            user = auth.create_user(f"bench{n}@example.com", "pw")
            started = time.perf_counter()
            seed_posts(user.id, n)
            seeded_s = time.perf_counter() - started
            user_id = user.id
        env = {
            "DATABASE_URL": database.url(),
            "BROKER_URL": vhost.url(),
            "EXPORT_DIR": str(export_dir),
            "MAIL_PORT": str(smtp.port),
            "SECRET_KEY": app.config["SECRET_KEY"],
        }
        worker = WorkerProcess(env, workdir / f"worker-{n}.log")
        baseline_mb = peak_rss_mb(worker.process.pid)
        with app.app_context():
            export = service.request_export(user_id=user_id, kind="posts", format="csv")
            job_id = export.job_id

        def finished():
            with app.app_context():
                job = db.session.get(Job, job_id)
                return job if job.status in ("succeeded", "failed") else None

        job = wait_until(finished, timeout=1800, interval=0.2, message="export")
        assert job.status == "succeeded", job.error_message
        export_s = (job.finished_at - job.started_at).total_seconds()
        actor_rate = n / export_s
        peak_mb = peak_rss_mb(worker.process.pid)
        copy = copy_rate(database.url().replace("+psycopg", ""), user_id, n, workdir / "copy.csv")
        return {
            "n": n,
            "seed_s": seeded_s,
            "actor_rows_s": actor_rate,
            "copy_rows_s": copy,
            "ratio": actor_rate / copy,
            "worker_boot_mb": baseline_mb,
            "worker_peak_mb": peak_mb,
        }
    finally:
        if worker:
            worker.stop()
        broker_of(app).close()
        with app.app_context():
            db.engine.dispose()
        smtp.stop()
        vhost.delete()
        database.drop()


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000]
    print(
        f"{'N':>10} {'seed s':>7} {'actor rows/s':>13} {'COPY rows/s':>12} {'ratio':>6} "
        f"{'worker MB (boot → peak)':>24}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            r = run(n, Path(tmp))
            print(
                f"{r['n']:>10,} {r['seed_s']:>7.1f} {r['actor_rows_s']:>13,.0f} "
                f"{r['copy_rows_s']:>12,.0f} {r['ratio']:>6.2f} "
                f"{r['worker_boot_mb']:>12.0f} → {r['worker_peak_mb']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

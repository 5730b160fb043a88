"""A bulk retry after an outage: JOBS failed jobs, then a bulk action over all of
them, as ``flask jobs retry --all-failed``, ``POST /api/jobs/bulk`` and the
admin's "Retry all matching" start it (``bulk_actions.start``), run here as its
worker runs it (``bulk_actions.run``: batches of ``control.retry_many``),
publishing to a real RabbitMQ. Timed from the request to the last job
published; every job must be queued once and in the queue afterwards.

The bulk action runs in this process, so its statements are counted here
(``costs.Meter.count_here``); its CPU is the row ``CPU ms, bench``.

    .venv/bin/python -m bench.bulk_retry [JOBS]    # default: 100000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import common, costs, project

TARGET_S = 60.0  # issue: 100,000 jobs retried in under a minute
FILL = 5_000  # jobs per statement while filling


def fill(app, n: int) -> None:
    """``n`` failed jobs, written as an outage leaves them, in multi-row INSERTs."""
    from app.db import db, utcnow
    from app.jobs import outbox, state
    from bench.noop_actors import BENCH_NOOP

    with app.app_context():
        for offset in range(0, n, FILL):
            rows = [
                state.new_job_values(BENCH_NOOP, args=[], max_retries=0)
                for _ in range(min(FILL, n - offset))
            ]
            for row in rows:
                row.update(status="failed", finished_at=utcnow(), error_type="SMTPDataError")
            outbox.insert_jobs(rows)
            db.session.commit()


def main(argv: list[str]) -> None:
    from sqlalchemy import func, select

    from app import bulk_actions
    from app.db import db
    from app.jobs import kinds
    from app.models import Job
    from bench.noop_actors import BENCH_NOOP

    (n,) = common.sizes(argv, [100_000])
    print(f"bulk_retry: {n:,} failed jobs, one bulk action over all of them", flush=True)
    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    app = publisher = meter = None
    with tempfile.TemporaryDirectory(prefix="bench-bulk-retry-") as tmp:
        try:
            meter = costs.Meter(Path(tmp), database=database)
            meter.count_here("retry")  # before the app makes its engine
            app = project.database_app(database)
            kinds.register(app, BENCH_NOOP)
            started = time.perf_counter()
            fill(app, n)
            print(f"filled {n:,} jobs in {time.perf_counter() - started:.1f}s", flush=True)
            publisher = project.use_broker(app, vhost.url())
            with app.app_context():
                filters = bulk_actions.Filters(status="failed", actor=BENCH_NOOP.actor)
                meter.start()
                started = time.perf_counter()
                bulk = bulk_actions.start("retry", filters, user_id=None)
                result = bulk_actions.run(bulk.id)
                seconds = time.perf_counter() - started
                meter.stop()
                retried, skipped = result["done"], result["skipped"]
                series = dict(
                    db.session.execute(
                        select(Job.series, func.count())
                        .where(Job.published_at.is_not(None), Job.actor == BENCH_NOOP.actor)
                        .group_by(Job.series)
                    ).all()
                )
                db.session.rollback()
            queued = vhost.message_count(BENCH_NOOP.queue)
            figures = meter.per_job(max(1, retried))
            breakdown = costs.breakdown(meter, max(1, retried))
        finally:
            if publisher:
                publisher.close()
            if app is not None:
                project.dispose(app)
            if meter:
                meter.close()
            vhost.delete()
            database.drop()
    right = retried == n and skipped == 0 and queued == n and series == {1: n}
    print(
        f"retried {retried:,}, skipped {skipped:,} in {seconds:.1f}s; {queued:,} messages in"
        f" queue {BENCH_NOOP.queue!r}, published jobs by series {series}"
        f" (expected {n:,} of series 1: {'ok' if right else 'WRONG'})"
    )
    print(costs.table({"retry": figures}))
    print(breakdown)
    print(
        f"RESULT bulk_retry: {n:,} jobs in {seconds:.1f}s, {retried / seconds:,.0f} jobs/s"
        f" (target < {TARGET_S:.0f} s: {common.verdict(seconds, TARGET_S, at_least=False)})"
    )
    if not right:
        raise SystemExit("bulk_retry: not every job was retried and published once")


if __name__ == "__main__":
    main(sys.argv[1:])

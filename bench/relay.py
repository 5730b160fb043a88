"""The relay: jobs committed but never published (``queued``, ``published_at``
NULL, as a broker outage leaves them), then the project's relay
(``app.maintenance.relay.relay``) called as ``flask jobs relay`` calls it, in an
app context, until it publishes nothing more (or ``DEADLINE_S`` has passed: a
relay that publishes one job at a time takes minutes). Rate = jobs published /
the time of those calls; every one must be in the queue afterwards.

The relay runs in this process, so its statements are counted here
(``costs.Meter.count_here``); its CPU is the row ``CPU ms, bench``.

    .venv/bin/python -m bench.relay [JOBS [LIMIT]]    # default: 20000, relay.BATCH
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import common, costs, project

TARGET = 5_000
FILL = 1_000  # jobs per commit while filling
DEADLINE_S = 20  # a slow relay is timed on what it published by then


def fill(app, n: int) -> None:
    from app.db import db
    from app.jobs import state
    from bench.noop_actors import BENCH_NOOP

    with app.app_context():
        for offset in range(0, n, FILL):
            for _ in range(min(FILL, n - offset)):
                state.new_job(BENCH_NOOP, args=[], max_retries=0)
            db.session.commit()  # committed, never published


def unpublished(app) -> int:
    from sqlalchemy import func, select

    from app.db import db
    from app.jobs import outbox

    with app.app_context():
        count = db.session.scalar(select(func.count()).where(outbox.unpublished())) or 0
        db.session.rollback()
        return count


def main(argv: list[str]) -> None:
    from app.jobs import kinds
    from app.maintenance import relay
    from bench.noop_actors import BENCH_NOOP

    n, limit = common.sizes(argv, [20_000, relay.BATCH])
    print(
        f"relay: {n:,} unpublished jobs, relay(limit={limit:,}) until it publishes none", flush=True
    )
    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    app = publisher = meter = None
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        try:
            meter = costs.Meter(Path(tmp), database=database)
            meter.count_here("relay")  # before the app makes its engine
            app = project.database_app(database)
            kinds.register(app, BENCH_NOOP)
            started = time.perf_counter()
            fill(app, n)
            print(f"filled {n:,} jobs in {time.perf_counter() - started:.1f}s", flush=True)
            publisher = project.use_broker(app, vhost.url())
            meter.start()
            started = time.perf_counter()
            calls = published = 0
            with app.app_context():
                while time.perf_counter() - started < DEADLINE_S and (
                    done := relay.relay(limit=limit)["published"]
                ):
                    calls, published = calls + 1, published + done
            seconds = time.perf_counter() - started
            meter.stop()
            waiting = unpublished(app)
            queued = vhost.message_count(BENCH_NOOP.queue)
            figures = meter.per_job(max(1, published))
            breakdown = costs.breakdown(meter, max(1, published))
        finally:
            if publisher:
                publisher.close()
            if app is not None:
                project.dispose(app)
            if meter:
                meter.close()
            vhost.delete()
            database.drop()
    rate = published / seconds
    right = queued == published and published + waiting == n
    print(
        f"published {published:,} in {seconds:.1f}s over {calls} calls"
        f"{f' (stopped at {DEADLINE_S} s)' if waiting else ''}; {waiting:,} still unpublished;"
        f" {queued:,} messages in queue {BENCH_NOOP.queue!r} (expected {published:,}:"
        f" {'ok' if right else 'WRONG'})"
    )
    print(costs.table({"relay": figures}))
    print(breakdown)
    print(
        f"RESULT relay: {rate:,.0f} jobs/s (target >= {TARGET:,}: {common.verdict(rate, TARGET)})"
    )
    if not right:
        raise SystemExit(
            f"relay: {queued:,} messages queued for {published:,} jobs published"
            f" and {waiting:,} unpublished, of {n:,}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

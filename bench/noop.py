"""No-op jobs through the worker: the project with full job state against bare
Dramatiq and Celery, on the same RabbitMQ (a vhost each).

- project: ``bench_noop`` jobs (bench/noop_actors.py) made as the app makes jobs,
  rows from ``state.new_job`` committed and published by the outbox, run by
  ``dramatiq actors bench.noop_actors`` with the project's whole middleware;
  done when every job is ``succeeded`` in the database;
- bare Dramatiq: a plain actor, Dramatiq's default middleware (bench/bare_noop.py);
- Celery: a plain task, prefork pool, no result backend (bench/celery_noop.py).

All N messages are queued before the workers start; the rate is N over the time
from the first job starting (project: the earliest ``started_at``; baselines:
the first job reporting done) to the last one done (project: the latest
``finished_at``).

    .venv/bin/python -m bench.noop [N [CELERY_CONCURRENCY]]    # default: 20000 16
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import common, costs, project

PROCESSES, THREADS = 2, 8
TARGET_DRAMATIQ, TARGET_CELERY = 0.5, 1.8
BATCH = 500


def run_project(n: int, log_dir: Path) -> dict:
    from app.jobs import kinds, outbox, state
    from bench.noop_actors import BENCH_NOOP

    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    meter = costs.Meter(log_dir, database=database)
    app = worker = publisher = None
    try:
        app = project.database_app(database)
        kinds.register(app, BENCH_NOOP)
        publisher = project.use_broker(app, vhost.url())
        started = time.perf_counter()
        with app.app_context():
            for offset in range(0, n, BATCH):
                jobs = [
                    state.new_job(BENCH_NOOP, args=[], max_retries=0)
                    for _ in range(min(BATCH, n - offset))
                ]
                outbox.commit_and_publish(*jobs)
        enqueue_s = time.perf_counter() - started
        worker = common.dramatiq_worker(
            "project-noop",
            ["actors", "bench.noop_actors"],
            processes=PROCESSES,
            threads=THREADS,
            env={**project.env(database, vhost, 25), **meter.env("worker")},
            log_dir=log_dir,
        )
        meter.watch(worker=worker)
        meter.start(settle=False)  # some jobs have run already: costs count from here
        measured = n - project.status_counts(app, BENCH_NOOP.actor).get("succeeded", 0)

        def done():
            worker.check()
            counts = project.status_counts(app, BENCH_NOOP.actor)
            if counts.get("failed"):
                raise RuntimeError(f"project jobs failed: {counts}; see {worker.log_path}")
            return counts.get("succeeded", 0) >= n

        common.wait_for(done, timeout=max(600, n / 20), interval=0.5, what="project no-op jobs")
        meter.stop()
        first, last = project.span(app, BENCH_NOOP.actor)
        seconds = (last - first).total_seconds()
        return {
            "what": "project (full job state)",
            "settings": f"{PROCESSES}x{THREADS}",
            "enqueue_s": enqueue_s,
            "seconds": seconds,
            "rate": n / seconds,
            "costs": meter.per_job(measured),
            "measured": measured,
            "statements": costs.breakdown(meter, measured),
        }
    finally:
        if worker:
            worker.stop()
        if publisher:
            publisher.close()
        if app is not None:
            project.dispose(app)
        meter.close()
        vhost.delete()
        database.drop()


def run_bare(n: int, log_dir: Path) -> dict:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    vhost, counter = project.RabbitVhost(), common.DoneCounter()
    meter = costs.Meter(log_dir)
    broker = worker = None
    try:
        broker = RabbitmqBroker(url=vhost.url())
        broker.declare_queue("bare_noop")
        started = time.perf_counter()
        for _ in range(n):
            broker.enqueue(
                dramatiq.Message(
                    queue_name="bare_noop", actor_name="noop", args=(), kwargs={}, options={}
                )
            )
        enqueue_s = time.perf_counter() - started
        worker = common.dramatiq_worker(
            "bare-noop",
            ["bench.bare_noop"],
            processes=PROCESSES,
            threads=THREADS,
            env={"BENCH_BROKER_URL": vhost.url(), **counter.env},
            log_dir=log_dir,
        )
        meter.watch(worker=worker)
        meter.start(settle=False)  # as the project's: from the moment the workers are ready
        measured = n - counter.count
        common.wait_for(
            lambda: worker.check() and counter.count >= n,
            timeout=max(300, n / 50),
            interval=0.05,
            what="bare no-op jobs",
        )
        meter.stop()
        seconds = counter.last - counter.first
        return {
            "what": "bare Dramatiq",
            "settings": f"{PROCESSES}x{THREADS}",
            "enqueue_s": enqueue_s,
            "seconds": seconds,
            "rate": n / seconds,
            "costs": meter.per_job(measured),
            "measured": measured,
        }
    finally:
        if worker:
            worker.stop()
        if broker:
            broker.close()
        counter.close()
        meter.close()
        vhost.delete()


def run_celery(n: int, concurrency: int, log_dir: Path) -> dict:
    from bench import celery_noop

    vhost, counter = project.RabbitVhost(), common.DoneCounter()
    worker = None
    try:
        celery_noop.app.conf.broker_url = vhost.url()
        started = time.perf_counter()
        with celery_noop.app.producer_or_acquire() as producer:
            for _ in range(n):
                celery_noop.noop.apply_async(producer=producer)
        enqueue_s = time.perf_counter() - started
        worker = common.Process(
            "celery-noop",
            [
                str(common.BIN / "celery"),
                "-A",
                "bench.celery_noop",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                celery_noop.QUEUE,
            ],
            # Celery reads BROKER_URL from the environment too (this process sets stub://).
            env={"BENCH_BROKER_URL": vhost.url(), "BROKER_URL": vhost.url(), **counter.env},
            log_dir=log_dir,
        )
        common.wait_for(
            lambda: worker.check() and counter.count >= n,
            timeout=max(300, n / 20),
            interval=0.05,
            what="celery no-op tasks",
        )
        seconds = counter.last - counter.first
        return {
            "what": "Celery (prefork, no result backend)",
            "settings": f"prefork {concurrency}",
            "enqueue_s": enqueue_s,
            "seconds": seconds,
            "rate": n / seconds,
        }
    finally:
        if worker:
            worker.stop()
        celery_noop.app.pool.force_close_all()
        counter.close()
        vhost.delete()


def main(argv: list[str]) -> None:
    n, concurrency = common.sizes(argv, [20_000, PROCESSES * THREADS])
    print(
        f"no-op jobs: {n:,} queued before the workers start; Dramatiq {PROCESSES} processes x"
        f" {THREADS} threads, Celery prefork concurrency {concurrency}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        log_dir = Path(tmp)
        bare = run_bare(n, log_dir)
        celery = run_celery(n, concurrency, log_dir)
        ours = run_project(n, log_dir)
    rows = [bare, celery, ours]
    for row in rows:
        row["ratio"] = ours["rate"] / row["rate"]
    print(
        common.table(
            rows,
            [
                ("what", ""),
                ("settings", ""),
                ("enqueue_s", ".1f"),
                ("seconds", ".1f"),
                ("rate", ",.0f"),
                ("ratio", ".2f"),
            ],
        )
    )
    print(
        "(rate: jobs/s from the first job started to the last done; ratio: project / row;"
        " enqueue_s: time to queue them, not in the rate)"
    )
    print(
        f"costs from the moment every worker process was ready, over the jobs done after it"
        f" (bare Dramatiq {bare['measured']:,}, project {ours['measured']:,}):"
    )
    print(costs.table({"bare Dramatiq": bare["costs"], "project": ours["costs"]}))
    print(ours["statements"])
    r_bare, r_celery = ours["rate"] / bare["rate"], ours["rate"] / celery["rate"]
    print(
        f"RESULT no-op: project {ours['rate']:,.0f} jobs/s, bare Dramatiq {bare['rate']:,.0f}, "
        f"ratio {r_bare:.2f} (target >= {TARGET_DRAMATIQ}: "
        f"{common.verdict(r_bare, TARGET_DRAMATIQ)})"
    )
    print(
        f"RESULT no-op vs Celery: project {ours['rate']:,.0f} jobs/s, Celery "
        f"{celery['rate']:,.0f}, ratio {r_celery:.2f} (target >= {TARGET_CELERY}: "
        f"{common.verdict(r_celery, TARGET_CELERY)}); bare Dramatiq / Celery "
        f"{bare['rate'] / celery['rate']:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

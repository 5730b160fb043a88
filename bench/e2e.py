"""End to end, HTTP → RabbitMQ → worker → SMTP: the project against the toy.

The toy (bench/toy.py): a Flask endpoint that calls ``actor.send()`` on
gunicorn with 2 sync workers, a bare Dramatiq actor that sends with smtplib,
nothing in a database, a RabbitMQ vhost of its own. The project: the web as the
Procfile starts it (``gunicorn -c deploy/gunicorn.conf.py "app:create_app()"``),
``dramatiq actors`` workers, a PostgreSQL database and a vhost of its own. Both
get the same worker processes × threads, the same 16 HTTP clients (keep-alive
where the server allows it) and the same SMTP sink, and a warm-up first.

HTTP enqueue is requests / (last response − first request); end to end is
emails / (last email at the sink − first request).

    .venv/bin/python -m bench.e2e [EMAILS [CLIENTS]]      # default: 2000 16
    .venv/bin/python -m bench.e2e --profile DIR           # the project only, under py-spy
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import time
from pathlib import Path

from bench import common, costs, profiling, project, smtp_sink

PROCESSES, THREADS = 2, 8
WARMUP = 64
TARGET = 0.8
# HTTP enqueue against the toy, its p99 against the toy's, and the statements
# per email of web and worker together, in steady state.
TARGET_ENQUEUE, TARGET_P99_TIMES, TARGET_STATEMENTS = 0.6, 2.0, 4.0
TOY_GUNICORN = ["-w", "2", "-k", "sync"]


def email(i: int) -> dict:
    return {"to": f"user{i}@example.com", "subject": f"Hello {i}", "body": "Sent by a worker.\n"}


def drive(
    port: int, headers: dict, n: int, clients: int, sink: smtp_sink.SmtpSink, meter: costs.Meter
) -> dict:
    warm = common.post_load(
        port, "/api/emails", requests=WARMUP, clients=clients, body=email, headers=headers
    )
    assert warm.statuses == {202: WARMUP}, warm.statuses
    sink.wait_for(WARMUP, timeout=120)
    time.sleep(0.5)
    sink.reset()
    meter.start()
    load = common.post_load(
        port, "/api/emails", requests=n, clients=clients, body=email, headers=headers
    )
    last = sink.wait_for(n, timeout=max(300, n / 5))
    return {
        "enqueue": load.rate,
        "p50": load.percentile(50),
        "p99": load.percentile(99),
        "e2e": n / (last - load.started),
        "seconds": last - load.started,
        "errors": n - load.statuses[202],
        "per_conn": sink.messages / max(1, sink.connections),
    }


def run_toy(n: int, clients: int, sink: smtp_sink.SmtpSink, log_dir: Path) -> dict:
    vhost, meter = project.RabbitVhost(), costs.Meter(log_dir)
    web = worker = None
    try:
        env = {"TOY_BROKER_URL": vhost.url(), "MAIL_PORT": str(sink.port)}
        worker = common.dramatiq_worker(
            "toy-worker",
            ["bench.toy"],
            processes=PROCESSES,
            threads=THREADS,
            env=env,
            log_dir=log_dir,
        )
        port = common.free_port()
        web = common.gunicorn(
            "toy-web", "bench.toy:app", port=port, env=env, log_dir=log_dir, args=TOY_GUNICORN
        )
        meter.watch(web=web, worker=worker)
        result = drive(port, {}, n, clients, sink, meter)
        meter.stop()
        result["costs"] = meter.per_job(n)
        result["web"] = "gunicorn 2 sync workers"
        return result
    finally:
        for process in (web, worker):
            if process:
                process.stop()
        meter.close()
        vhost.delete()


def run_project(
    n: int, clients: int, sink: smtp_sink.SmtpSink, log_dir: Path, profile_dir: Path | None = None
) -> dict:
    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    meter = costs.Meter(log_dir, database=database)
    app = web = worker = None
    spies = []
    try:
        app = project.database_app(database)
        _, token = project.user_and_token(app)
        env = project.env(database, vhost, sink.port)
        settings = common.gunicorn_settings(env)
        worker = common.dramatiq_worker(
            "project-worker",
            ["actors"],
            processes=PROCESSES,
            threads=THREADS,
            env={**env, **meter.env("worker")},
            log_dir=log_dir,
        )
        port = common.free_port()
        web = common.gunicorn(
            "project-web",
            "app:create_app()",
            port=port,
            env={**env, **meter.env("web")},
            log_dir=log_dir,
            args=["-c", "deploy/gunicorn.conf.py"],
        )
        meter.watch(web=web, worker=worker)
        headers = {"Authorization": f"Bearer {token}"}
        if profile_dir:
            worker_pid = _worker_pids(worker)[0]
            for idle in (False, True):
                suffix = "-idle" if idle else ""
                spies.append(
                    profiling.record(
                        f"spy-web{suffix}",
                        web.pid,
                        profile_dir / f"web{suffix}.txt",
                        log_dir=log_dir,
                        idle=idle,
                        subprocesses=True,
                    )
                )
                spies.append(
                    profiling.record(
                        f"spy-worker{suffix}",
                        worker_pid,
                        profile_dir / f"worker{suffix}.txt",
                        log_dir=log_dir,
                        idle=idle,
                        subprocesses=False,
                    )
                )
            time.sleep(1)
        result = drive(port, headers, n, clients, sink, meter)
        for spy in spies:
            profiling.stop(spy)
        # The last emails are at the sink; their jobs' last writes may still be landing.
        with contextlib.suppress(TimeoutError):  # the counts below say which did not
            common.wait_for(
                lambda: not _unfinished(app),
                timeout=30,
                interval=0.2,
                what="the last jobs to finish",
            )
        meter.stop()
        result["costs"] = meter.per_job(n)
        result["statements"] = costs.breakdown(meter, n)
        counts = project.status_counts(app, "send_email")
        result["jobs"] = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        result["web"] = (
            f"gunicorn {settings['workers']} {settings['worker_class']} workers"
            f" x {settings['threads']} threads (deploy/gunicorn.conf.py)"
        )
        return result
    finally:
        for spy in spies:
            profiling.stop(spy)
        for process in (web, worker):
            if process:
                process.stop()
        if app is not None:
            project.dispose(app)
        meter.close()
        vhost.delete()
        database.drop()


def _unfinished(app) -> int:
    counts = project.status_counts(app, "send_email")
    return sum(counts.get(status, 0) for status in ("queued", "running", "retrying"))


def _worker_pids(worker: common.Process) -> list[int]:
    """The dramatiq worker processes' pids, from their "ready" lines."""
    return [int(pid) for pid in re.findall(r"\[PID (\d+)\][^\n]*ready for action", worker.log())]


def main(argv: list[str]) -> None:
    profile_dir = None
    if "--profile" in argv:
        at = argv.index("--profile")
        profile_dir = Path(argv[at + 1]).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
        argv = argv[:at] + argv[at + 2 :]
    n, clients = common.sizes(argv, [2000, 16])
    print(
        f"end to end: {n:,} emails, {clients} HTTP clients, workers {PROCESSES} processes x "
        f"{THREADS} threads, one SMTP sink for both",
        flush=True,
    )
    sink = smtp_sink.SmtpSink().start()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        log_dir = profile_dir or Path(tmp)  # when profiling, keep every log beside the profiles
        try:
            toy = None if profile_dir else run_toy(n, clients, sink, log_dir)
            ours = run_project(n, clients, sink, log_dir, profile_dir)
        finally:
            sink.stop()
    rows = [dict(ours, what="project")]
    if toy:
        rows.insert(0, dict(toy, what="toy"))
    print(
        common.table(
            rows,
            [
                ("what", ""),
                ("enqueue", ",.0f"),
                ("p50", ".1f"),
                ("p99", ".1f"),
                ("e2e", ",.0f"),
                ("seconds", ".1f"),
                ("errors", "d"),
                ("per_conn", ".1f"),
            ],
        )
    )
    print(
        "(enqueue: HTTP req/s; p50/p99: request ms; e2e: emails/s from the first request to"
        " the last email at the sink; per_conn: emails per SMTP connection)"
    )
    for row in rows:
        print(f"{row['what']} web: {row['web']}")
    print(f"project jobs: {ours['jobs']}")
    print(costs.table({row["what"]: row["costs"] for row in rows}, unit="email"))
    print(ours["statements"])
    if toy:
        e2e, enq = ours["e2e"] / toy["e2e"], ours["enqueue"] / toy["enqueue"]
        print(
            f"RESULT e2e: project {ours['e2e']:,.0f} emails/s, toy {toy['e2e']:,.0f}, "
            f"ratio {e2e:.2f} (target >= {TARGET}: {common.verdict(e2e, TARGET)})"
        )
        p99_times = ours["p99"] / toy["p99"]
        print(
            f"RESULT e2e HTTP enqueue: project {ours['enqueue']:,.0f} req/s, toy "
            f"{toy['enqueue']:,.0f}, ratio {enq:.2f} (target >= {TARGET_ENQUEUE}: "
            f"{common.verdict(enq, TARGET_ENQUEUE)}); p99 {ours['p99']:.0f} ms, "
            f"{p99_times:.1f} x the toy's {toy['p99']:.0f} ms (target <= {TARGET_P99_TIMES}: "
            f"{common.verdict(p99_times, TARGET_P99_TIMES, at_least=False)})"
        )
    figures = ours["costs"]
    web, worker = figures.get("statements, web", 0.0), figures.get("statements, worker", 0.0)
    print(
        f"RESULT statements per email: web {web:.2f} + worker {worker:.2f} = {web + worker:.2f}"
        f" (target <= {TARGET_STATEMENTS}: "
        f"{common.verdict(web + worker, TARGET_STATEMENTS, at_least=False)})"
    )
    if profile_dir:
        print("(under py-spy: figures perturbed by the profilers)")
        for name, focus in (("web", "handle_request"), ("worker", "process_message")):
            print(profiling.summarize(profile_dir / f"{name}.txt"))
            print(profiling.summarize(profile_dir / f"{name}-idle.txt", focus=focus))


if __name__ == "__main__":
    main(sys.argv[1:])

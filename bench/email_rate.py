"""Emails through the worker to a local SMTP sink, with and without SMTP
connection reuse; every run 2 worker processes x 8 threads, the same sink.

- the project's worker as the tree has it (``dramatiq actors``, full job state);
- the project with connection reuse turned off, when its configuration has a
  setting for that (a ``MAIL_``/``SMTP_`` key naming a pool, reuse or keep-alive);
- the toy's bare Dramatiq actor (bench/toy.py), one SMTP connection per email,
  and the same actor keeping one connection per thread: what reuse is worth
  without any job state.

All N emails are queued before the workers start; the rate is N - 1 over the
time from the first email at the sink to the last. The sink also counts the
connections, which shows whether a worker reused them.

    .venv/bin/python -m bench.email_rate [N]    # default: 3000
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from bench import common, project, smtp_sink

PROCESSES, THREADS = 2, 8
TARGET = 300
BATCH = 500
REUSE_SETTING = re.compile(r"^(MAIL|SMTP)_.*(POOL|REUSE|KEEPALIVE|KEEP_ALIVE|PERSIST)")


def reuse_off_setting() -> tuple[str, str] | None:
    """(name, value) of a setting that turns SMTP connection reuse off, if any."""
    from app.config import from_env

    for name, default in from_env({}).items():
        if REUSE_SETTING.match(name):
            return name, "false" if isinstance(default, bool) else "0"
    return None


def _rate(sink: smtp_sink.SmtpSink, n: int, what: str, settings: str) -> dict:
    seconds = sink.last - sink.first
    return {
        "what": what,
        "settings": settings,
        "seconds": seconds,
        "rate": (n - 1) / seconds,
        "connections": sink.connections,
        "per_conn": sink.messages / max(1, sink.connections),
    }


def run_toy(n: int, sink: smtp_sink.SmtpSink, log_dir: Path, *, reuse: bool) -> dict:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    vhost = project.RabbitVhost()
    broker = worker = None
    try:
        broker = RabbitmqBroker(url=vhost.url())
        broker.declare_queue("toy_emails")
        for i in range(n):
            broker.enqueue(
                dramatiq.Message(
                    queue_name="toy_emails",
                    actor_name="send_email",
                    args=(f"user{i}@example.com", f"Hello {i}", "Sent by a worker.\n"),
                    kwargs={},
                    options={},
                )
            )
        sink.reset()
        env = {
            "TOY_BROKER_URL": vhost.url(),
            "MAIL_PORT": str(sink.port),
            "TOY_SMTP_REUSE": "1" if reuse else "0",
        }
        name = "toy-reuse" if reuse else "toy-per-email"
        worker = common.dramatiq_worker(
            name, ["bench.toy"], processes=PROCESSES, threads=THREADS, env=env, log_dir=log_dir
        )
        sink.wait_for(n, timeout=max(300, n / 10))
        what = "bare actor, " + ("connection per thread" if reuse else "connection per email")
        return _rate(sink, n, what, f"{PROCESSES}x{THREADS}")
    finally:
        if worker:
            worker.stop()
        if broker:
            broker.close()
        vhost.delete()


def run_project(
    n: int, sink: smtp_sink.SmtpSink, log_dir: Path, *, extra_env: dict, what: str
) -> dict:
    from app import email_queue
    from app.jobs import outbox

    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    app = worker = publisher = None
    try:
        app = project.database_app(database)
        user_id, _ = project.user_and_token(app)
        publisher = project.use_broker(app, vhost.url())
        with app.app_context():
            for offset in range(0, n, BATCH):
                jobs = []
                for i in range(offset, min(n, offset + BATCH)):
                    _, job = email_queue.new_email(
                        user_id=user_id,
                        to=f"user{i}@example.com",
                        subject=f"Hello {i}",
                        body="Sent by a worker.\n",
                    )
                    jobs.append(job)
                outbox.commit_and_publish(*jobs)
        sink.reset()
        env = {**project.env(database, vhost, sink.port), **extra_env}
        worker = common.dramatiq_worker(
            "project-" + ("-".join(extra_env) or "as-is"),
            ["actors"],
            processes=PROCESSES,
            threads=THREADS,
            env=env,
            log_dir=log_dir,
        )
        common.wait_for(
            lambda: worker.check() and sink.messages >= n,
            timeout=max(300, n / 5),
            interval=0.05,
            what="the project's emails",
        )
        settings = f"{PROCESSES}x{THREADS}" + "".join(f" {k}={v}" for k, v in extra_env.items())
        return _rate(sink, n, what, settings)
    finally:
        if worker:
            worker.stop()
        if publisher:
            publisher.close()
        if app is not None:
            project.dispose(app)
        vhost.delete()
        database.drop()


def main(argv: list[str]) -> None:
    (n,) = common.sizes(argv, [3000])
    setting = reuse_off_setting()
    print(
        f"email rate: {n:,} emails queued before the workers start, {PROCESSES} processes x "
        f"{THREADS} threads; reuse-off setting in app/config.py: "
        f"{'='.join(setting) if setting else 'none found'}",
        flush=True,
    )
    sink = smtp_sink.SmtpSink().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp:
            log_dir = Path(tmp)
            rows.append(run_toy(n, sink, log_dir, reuse=False))
            rows.append(run_toy(n, sink, log_dir, reuse=True))
            if setting:
                rows.append(
                    run_project(
                        n, sink, log_dir, extra_env=dict([setting]), what="project, reuse off"
                    )
                )
            rows.append(run_project(n, sink, log_dir, extra_env={}, what="project as it is"))
    finally:
        sink.stop()
    ours, per_email = rows[-1], rows[0]
    print(
        common.table(
            rows,
            [
                ("what", ""),
                ("settings", ""),
                ("seconds", ".1f"),
                ("rate", ",.0f"),
                ("connections", ",d"),
                ("per_conn", ".1f"),
            ],
        )
    )
    print(
        "(rate: emails/s from the first at the sink to the last; per_conn: emails per SMTP"
        " connection)"
    )
    baseline = rows[2] if setting else per_email
    print(
        f"RESULT email rate: project {ours['rate']:,.0f} emails/s "
        f"({ours['per_conn']:.1f} per connection; target >= {TARGET}: "
        f"{common.verdict(ours['rate'], TARGET)}); one connection per email: "
        f"{baseline['what']} {baseline['rate']:,.0f} emails/s, "
        f"ratio {ours['rate'] / baseline['rate']:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""HTTP enqueue: the project's ``POST /api/emails`` against a trivial endpoint
(bench/trivial.py: parse the JSON, answer 202) in the same gunicorn
configuration (``-c deploy/gunicorn.conf.py``), 16 keep-alive clients.

The project's web has a PostgreSQL database and a RabbitMQ vhost of its own and
no worker: each request commits its job and email and publishes (publisher
confirms), the messages wait in the queue. A warm-up precedes each run.

    .venv/bin/python -m bench.enqueue [REQUESTS [CLIENTS]]    # default: 3000 16
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench import common, project

TARGET_RATIO, TARGET_P99_MS = 0.5, 50
WARMUP = 100
GUNICORN = ["-c", "deploy/gunicorn.conf.py"]


def email(i: int) -> dict:
    return {"to": f"user{i}@example.com", "subject": f"Hello {i}", "body": "Sent by a worker.\n"}


def measure(port: int, headers: dict, n: int, clients: int) -> dict:
    warm = common.post_load(
        port, "/api/emails", requests=WARMUP, clients=clients, body=email, headers=headers
    )
    assert warm.statuses == {202: WARMUP}, warm.statuses
    load = common.post_load(
        port, "/api/emails", requests=n, clients=clients, body=email, headers=headers
    )
    return {
        "rate": load.rate,
        "p50": load.percentile(50),
        "p90": load.percentile(90),
        "p99": load.percentile(99),
        "errors": n - load.statuses[202],
    }


def run_trivial(n: int, clients: int, log_dir: Path) -> dict:
    port, web = common.free_port(), None
    try:
        web = common.gunicorn(
            "trivial-web",
            "bench.trivial:create_app()",
            port=port,
            env={},
            log_dir=log_dir,
            args=GUNICORN,
        )
        return {"what": "trivial endpoint", **measure(port, {}, n, clients)}
    finally:
        if web:
            web.stop()


def run_project(n: int, clients: int, log_dir: Path) -> dict:
    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    app = web = None
    try:
        app = project.database_app(database)
        _, token = project.user_and_token(app)
        port = common.free_port()
        web = common.gunicorn(
            "project-web",
            "app:create_app()",
            port=port,
            env=project.env(database, vhost, 25),
            log_dir=log_dir,
            args=GUNICORN,
        )
        headers = {"Authorization": f"Bearer {token}"}
        return {"what": "project POST /api/emails", **measure(port, headers, n, clients)}
    finally:
        if web:
            web.stop()
        if app is not None:
            project.dispose(app)
        vhost.delete()
        database.drop()


def main(argv: list[str]) -> None:
    n, clients = common.sizes(argv, [3000, 16])
    settings = common.gunicorn_settings()
    print(
        f"HTTP enqueue: {n:,} requests, {clients} keep-alive clients; both on gunicorn "
        f"-c deploy/gunicorn.conf.py: {settings['workers']} {settings['worker_class']} "
        f"workers x {settings['threads']} threads",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp:
        trivial = run_trivial(n, clients, Path(tmp))
        ours = run_project(n, clients, Path(tmp))
    ratio = ours["rate"] / trivial["rate"]
    ours["ratio"], trivial["ratio"] = ratio, 1.0
    print(
        common.table(
            [trivial, ours],
            [
                ("what", ""),
                ("rate", ",.0f"),
                ("p50", ".1f"),
                ("p90", ".1f"),
                ("p99", ".1f"),
                ("errors", "d"),
                ("ratio", ".2f"),
            ],
        )
    )
    print("(rate: req/s; p50/p90/p99: ms per request; ratio: against the trivial endpoint)")
    print(
        f"RESULT enqueue: project {ours['rate']:,.0f} req/s, trivial {trivial['rate']:,.0f}, "
        f"ratio {ratio:.2f} (target >= {TARGET_RATIO}: {common.verdict(ratio, TARGET_RATIO)})"
    )
    print(
        f"RESULT enqueue p99: project {ours['p99']:.1f} ms (p50 {ours['p50']:.1f} ms; target <"
        f" {TARGET_P99_MS} ms: "
        f"{common.verdict(ours['p99'], TARGET_P99_MS, at_least=False)})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""``POST /api/emails/batch`` (``{"messages": [{"to", "subject", "body"}, ...]}``,
1–1,000 of them, answered 202 ``{"items": [...]}``): emails accepted per second
against the toy's single ``POST /api/emails`` requests per second.

The project's web as bench/e2e.py starts it (``gunicorn -c deploy/gunicorn.conf.py``,
a database and a vhost of its own), REQUESTS batches of SIZE from CLIENTS
keep-alive clients after a warm-up; the toy's web as bench/e2e.py starts it
(bench/toy.py, gunicorn 2 sync workers), TOY_REQUESTS single requests from
TOY_CLIENTS. No workers on either side: the messages wait in the queues.
Rates are over first request → last response.

    .venv/bin/python -m bench.batch [REQUESTS [SIZE [CLIENTS [TOY_REQUESTS [TOY_CLIENTS]]]]]
    # default: 20 1000 4 2000 16
"""

from __future__ import annotations

import http.client
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import common, costs, project
from bench.e2e import TOY_GUNICORN, email

TARGET = 10
PATH = "/api/emails/batch"
WARMUP_BATCHES, WARMUP_SINGLE = 2, 64


def batch(i: int, size: int) -> dict:
    return {"messages": [email(i * size + k) for k in range(size)]}


def check_endpoint(port: int, headers: dict, size: int) -> None:
    """One batch, also the first of the warm-up: a clear failure where the tree has
    no batch endpoint (404, 405) or it answers otherwise than the contract says."""
    connection = http.client.HTTPConnection(common.HOST, port, timeout=60)
    try:
        connection.request(
            "POST",
            PATH,
            body=json.dumps(batch(10**6, size)),
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status in (404, 405):
        raise SystemExit(
            f"POST {PATH} answered {response.status}: this tree has no batch endpoint,"
            " so there is nothing to measure (the toy's figures above stand alone)"
        )
    items = None
    if response.status == 202:
        items = json.loads(body).get("items")
    if not isinstance(items, list) or len(items) != size:
        raise SystemExit(
            f"POST {PATH} with {size} messages answered {response.status}, not 202 with"
            f" {size} items: {body[:300]!r}"
        )


def load_figures(load: common.Load, emails_per_request: int) -> dict:
    return {
        "requests": load.requests,
        "emails": load.statuses[202] * emails_per_request,
        "seconds": load.seconds,
        "rate": load.statuses[202] * emails_per_request / load.seconds,
        "p50": load.percentile(50),
        "p99": load.percentile(99),
        "errors": load.requests - load.statuses[202],
    }


def run_toy(n: int, clients: int, log_dir: Path) -> dict:
    vhost, meter = project.RabbitVhost(), costs.Meter(log_dir)
    web = None
    try:
        port = common.free_port()
        web = common.gunicorn(
            "toy-web",
            "bench.toy:app",
            port=port,
            env={"TOY_BROKER_URL": vhost.url()},
            log_dir=log_dir,
            args=TOY_GUNICORN,
        )
        meter.watch(web=web)
        post: dict[str, Any] = {"body": email, "headers": {}}
        warm = common.post_load(
            port, "/api/emails", requests=WARMUP_SINGLE, clients=clients, **post
        )
        assert warm.statuses == {202: WARMUP_SINGLE}, warm.statuses
        meter.start()
        load = common.post_load(port, "/api/emails", requests=n, clients=clients, **post)
        meter.stop()
        return {"what": "toy POST /api/emails", **load_figures(load, 1), "costs": meter.per_job(n)}
    finally:
        if web:
            web.stop()
        meter.close()
        vhost.delete()


def run_project(n: int, size: int, clients: int, log_dir: Path) -> dict:
    database, vhost = project.PostgresDatabase(), project.RabbitVhost()
    meter = costs.Meter(log_dir, database=database)
    app = web = None
    try:
        app = project.database_app(database)
        _, token = project.user_and_token(app)
        port = common.free_port()
        web = common.gunicorn(
            "project-web",
            "app:create_app()",
            port=port,
            env={**project.env(database, vhost, 25), **meter.env("web")},
            log_dir=log_dir,
            args=["-c", "deploy/gunicorn.conf.py"],
        )
        meter.watch(web=web)
        headers = {"Authorization": f"Bearer {token}"}
        check_endpoint(port, headers, size)
        post: dict[str, Any] = {"body": lambda i: batch(i, size), "headers": headers}
        warm = common.post_load(port, PATH, requests=WARMUP_BATCHES - 1, clients=1, **post)
        assert warm.statuses == {202: WARMUP_BATCHES - 1}, warm.statuses
        meter.start()
        load = common.post_load(port, PATH, requests=n, clients=clients, **post)
        meter.stop()
        figures = load_figures(load, size)
        jobs = sum(project.status_counts(app).values())
        expected = (WARMUP_BATCHES + load.statuses[202]) * size
        if jobs != expected:
            raise SystemExit(f"{jobs:,} jobs in the database, {expected:,} accepted")
        return {
            "what": f"project POST {PATH}",
            **figures,
            "costs": meter.per_job(max(1, figures["emails"])),
            "statements": costs.breakdown(meter, max(1, figures["emails"])),
        }
    finally:
        if web:
            web.stop()
        if app is not None:
            project.dispose(app)
        meter.close()
        vhost.delete()
        database.drop()


def main(argv: list[str]) -> None:
    n, size, clients, toy_n, toy_clients = common.sizes(argv, [20, 1000, 4, 2000, 16])
    print(
        f"batch enqueue: {n} x {size:,} emails from {clients} clients, against the toy's"
        f" {toy_n:,} single requests from {toy_clients}; no workers",
        flush=True,
    )
    columns = [
        ("what", ""),
        ("requests", ",d"),
        ("emails", ",d"),
        ("seconds", ".2f"),
        ("rate", ",.0f"),
        ("p50", ".1f"),
        ("p99", ".1f"),
        ("errors", "d"),
    ]
    legend = "(rate: emails/s accepted; p50/p99: ms per request)"
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        toy = run_toy(toy_n, toy_clients, Path(tmp))
        print(common.table([toy], columns), flush=True)
        try:
            ours = run_project(n, size, clients, Path(tmp))
        except SystemExit:
            print(costs.table({"toy": toy["costs"]}, unit="email"))
            raise
    print(common.table([toy, ours], columns))
    print(legend)
    print(costs.table({"toy": toy["costs"], "project": ours["costs"]}, unit="email"))
    print(ours["statements"])
    ratio = ours["rate"] / toy["rate"]
    print(
        f"RESULT batch: project {ours['rate']:,.0f} emails/s accepted, toy {toy['rate']:,.0f}"
        f" req/s, ratio {ratio:.1f} (target >= {TARGET}: {common.verdict(ratio, TARGET)})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

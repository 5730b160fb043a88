"""Make sure RabbitMQ answers at BROKER_URL before ``make run`` starts the
processes; start a locally installed ``rabbitmq-server`` if it does not."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pika

from app import rabbitmq
from app.config import from_env

WAIT_S = 60


def reachable(url: str) -> bool:
    """At least one node of BROKER_URL answers, with its credentials and vhost."""
    return any(_answers(node) for node in rabbitmq.node_urls(url))


def _answers(node: str) -> bool:
    broker = rabbitmq.build(node, middleware=[], queue_type="classic", delivery_limit=0)
    try:
        broker.ping()
        return True
    except pika.exceptions.AMQPError:
        return False
    finally:
        broker.close()


def masked(url: str) -> str:
    """BROKER_URL (one URL or several, comma-separated) with each password as
    ``***``: fit to print, where the password is not."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username}:***@{host}")
        shown.append(urlunsplit(parts))
    return ",".join(shown)


def main() -> int:
    url = from_env()["BROKER_URL"]
    shown = masked(url)
    if reachable(url):
        return 0
    server = shutil.which("rabbitmq-server")
    if server is None:
        print(
            f"RabbitMQ is not reachable at {shown}.\n"
            "Start it, for example with `sudo systemctl start rabbitmq-server` or\n"
            "`docker run -d -p 5672:5672 rabbitmq:3`, or set BROKER_URL,\n"
            "then run `make run` again.",
            file=sys.stderr,
        )
        return 1
    print(f"RabbitMQ is not reachable at {shown}; starting the local rabbitmq-server ...")
    subprocess.run([server, "-detached"], check=False)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if reachable(url):
            print("RabbitMQ is up.")
            return 0
        time.sleep(1)
    print(
        f"RabbitMQ did not come up within {WAIT_S}s; see `rabbitmqctl status` and its log.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

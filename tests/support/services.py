"""Real services for tests: skip with the reason on a developer's machine when
one is missing; fail instead when ``CI`` is set, so CI never goes green by skipping."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# Each pytest-xdist worker hands out ports of its own range, below the kernel's
# ephemeral ports (32768 and up), in turn: a port that one worker found free is
# never handed to a server of the other, between the check and the bind.
PORTS_PER_WORKER = 4000
FIRST_PORT = 20_000
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_next_port = itertools.count(random.randrange(PORTS_PER_WORKER))


def free_port() -> int:
    """A port no socket on 127.0.0.1 is bound to, and that no other test of this
    run is handed while this one may still use it."""
    if FIRST_PORT + (_worker + 1) * PORTS_PER_WORKER > 32768:  # more workers than ranges
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(PORTS_PER_WORKER):
        port = FIRST_PORT + _worker * PORTS_PER_WORKER + next(_next_port) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this worker's range")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class RabbitVhost:
    """A RabbitMQ vhost of the test's own, removed afterwards."""

    def __init__(self):
        if not port_open(RABBITMQ_HOST, RABBITMQ_PORT):
            unavailable(f"RabbitMQ is not listening on {RABBITMQ_HOST}:{RABBITMQ_PORT}")
        if shutil.which("rabbitmqctl") is None:
            unavailable("rabbitmqctl is not installed, so a test vhost cannot be created")
        self.name = unique_name("test")
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def url(self, port: int = RABBITMQ_PORT) -> str:
        return f"amqp://guest:guest@{RABBITMQ_HOST}:{port}/{self.name}"

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name)

    def start_deleting(self) -> subprocess.Popen:
        """Delete the vhost, in the background: the caller waits for the process
        (and checks its exit status) when it must know the vhost is gone."""
        return subprocess.Popen(
            ["rabbitmqctl", "delete_vhost", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    @staticmethod
    def _ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    def queues(self) -> dict[str, dict]:
        """Each queue's type and arguments, as ``rabbitmqctl list_queues`` reports them."""
        listed = subprocess.run(
            ["rabbitmqctl", "list_queues", "-p", self.name, "-q", "--formatter", "json"]
            + ["name", "type", "arguments"],
            check=True,
            capture_output=True,
            timeout=60,
            text=True,
        )
        return {
            row["name"]: {
                "type": row["type"],
                "arguments": {name: value for name, _type, value in row["arguments"]},
            }
            for row in json.loads(listed.stdout)
        }

    def message_count(self, queue: str) -> int:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url()))
        try:
            declared = connection.channel().queue_declare(queue=queue, passive=True)
            return declared.method.message_count
        finally:
            connection.close()

    def message_ids(self, *queues: str) -> list[str]:
        """The message id of every message waiting in ``queues``, left in place
        (got without acknowledgement; closing the channel puts them back)."""
        import dramatiq
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url()))
        try:
            channel = connection.channel()
            ids = []
            for queue in queues:
                while True:
                    method, _, body = channel.basic_get(queue, auto_ack=False)
                    if method is None:
                        break
                    ids.append(dramatiq.Message.decode(body).message_id)
            return ids
        finally:
            connection.close()


class PostgresDatabase:
    """A PostgreSQL database of the test's own, dropped afterwards."""

    def __init__(self, *, template: str | None = None):
        import psycopg

        try:
            self._admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as error:
            unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error}")
        self.name = unique_name("test")
        suffix = f" TEMPLATE {template}" if template else ""
        self._admin.execute(f"CREATE DATABASE {self.name}{suffix}")

    def url(self, host: str = "127.0.0.1", port: int = 5432) -> str:
        return f"postgresql+psycopg://postgres@{host}:{port}/{self.name}"

    def set_read_only(self, read_only: bool) -> None:
        """Make every new session read-only (or writable again) and end the open
        ones, as a primary being demoted (or a new one promoted) would."""
        value = "on" if read_only else "off"
        self._admin.execute(
            f"ALTER DATABASE {self.name} SET default_transaction_read_only = {value}"
        )
        self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        )

    def connect(self):
        """A connection of the test's own to this database (not autocommit)."""
        import psycopg

        return psycopg.connect(self.url().replace("+psycopg", ""), connect_timeout=3)

    def drop(self) -> None:
        self._admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self._admin.close()

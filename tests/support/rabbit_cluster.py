"""A real RabbitMQ cluster of three nodes on the loopback, for tests that kill a node.

Each node is a ``rabbitmq-server`` of its own, run as the ``rabbitmq`` user (so it
shares that user's Erlang cookie with the others and with ``rabbitmqctl``), with
its own node name, AMQP and distribution ports, a config file whose
``listeners.tcp.local`` names its port (the system-wide file pins 5672), and data
and log directories under a temporary directory owned by ``rabbitmq``. Nodes 2
and 3 then ``join_cluster`` node 1. ``RabbitCluster(1)`` is a private single
node, e.g. for a test that raises a broker alarm. ``remove()`` kills every node and deletes its
files; call it in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.services import free_port, unavailable

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
USER = "rabbitmq"
BOOT_TIMEOUT_S = 120


class ClusterNode:
    def __init__(self, base: Path, name: str, extra_config: str = ""):
        self.extra_config = extra_config
        self.name = f"{name}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = base / name
        self.process: subprocess.Popen | None = None
        self.log_path = self.dir / "console.log"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        home = pwd.getpwnam(USER).pw_dir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,  # its .erlang.cookie: the same for every node and for rabbitmqctl
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
            "RABBITMQ_LOGS": "-",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def write_files(self) -> None:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 10MB\n"
            "vm_memory_high_watermark.relative = 0.2\n" + self.extra_config
        )
        (self.dir / "advanced.config").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[].\n")

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in kill)
        self.process = subprocess.Popen(
            ["runuser", "-u", USER, "--", "env", *[f"{k}={v}" for k, v in self.env().items()]]
            + [SERVER],
            cwd=self.dir,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        result = subprocess.run(
            ["runuser", "-u", USER, "--", "env", *[f"{k}={v}" for k, v in self.env().items()]]
            + [CTL, "-n", self.name, *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {self.name} {' '.join(args)} failed:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def wait_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline and self.alive():
            try:
                self.ctl("await_startup", "--timeout", "10", timeout=30)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                time.sleep(0.5)
        raise RuntimeError(f"node {self.name} did not boot:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as a machine's crash would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def set_memory_alarm(self, on: bool) -> None:
        """Raise the memory alarm (a watermark of 0: every publish is blocked),
        or clear it (the configured watermark again). This node's own setting only."""
        self.ctl("set_vm_memory_high_watermark", "0" if on else "0.2", timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class RabbitCluster:
    def __init__(self, size: int = 3, *, extra_config: str = ""):
        if not Path(SERVER).exists() or shutil.which("runuser") is None:
            unavailable(f"rabbitmq-server is not installed at {SERVER}")
        try:
            pwd.getpwnam(USER)
        except KeyError:
            unavailable(f"there is no {USER!r} user to run RabbitMQ nodes as")
        if os.geteuid() != 0:
            unavailable("starting RabbitMQ nodes as the rabbitmq user needs root")
        self.base = Path(tempfile.mkdtemp(prefix="rabbit-cluster-"))
        prefix = f"t{uuid.uuid4().hex[:6]}"
        self.nodes = [
            ClusterNode(self.base, f"{prefix}n{i + 1}", extra_config) for i in range(size)
        ]

    @property
    def url(self) -> str:
        """``BROKER_URL`` naming every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> RabbitCluster:
        for node in self.nodes:
            node.write_files()
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.base)], check=True)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_booted()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "60", timeout=90)
        return self

    def node_named(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def any_alive(self) -> ClusterNode:
        return next(node for node in self.nodes if node.alive())

    def queues(self, vhost: str = "/") -> dict[str, dict]:
        """Each queue's type, leader and members, as a surviving node reports them."""
        out = self.any_alive().ctl(
            "list_queues",
            "-p",
            vhost,
            "-q",
            "--formatter",
            "json",
            "name",
            "type",
            "leader",
            "members",
            timeout=30,
        )
        return {row["name"]: row for row in json.loads(out or "[]")}

    def leader(self, queue: str, vhost: str = "/") -> str | None:
        try:
            return self.queues(vhost).get(queue, {}).get("leader") or None
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
            return None

    def remove(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.base, ignore_errors=True)

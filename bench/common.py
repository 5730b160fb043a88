"""What the throughput benchmarks share: starting and stopping real processes
(gunicorn, dramatiq, celery), an HTTP load generator, a completion counter for
no-op jobs, percentiles and tables. The SMTP sink is in ``bench/smtp_sink.py``.

Kept free of project imports: worker processes of the baselines import it too.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- processes ---------------------------------------------------------------------------


class Process:
    """A command in a session of its own, its output in a log file; ``stop`` ends
    it and every process it started (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, command: list[str], *, env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **_path(), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check(self) -> bool:
        """Raise, with the end of its log, if the process has exited; else True,
        so that ``wait_for(lambda: process.check() and done())`` stops on either."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
        return True

    def wait_log(self, text: str, *, count: int = 1, timeout: float = 60) -> None:
        def seen():
            self.check()
            return self.log().count(text) >= count

        wait_for(seen, timeout=timeout, interval=0.1, what=f"{self.name}: {text!r} x{count}")

    def children(self) -> list[int]:
        """Pids of every process in its session but itself (gunicorn's and
        dramatiq's worker processes)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.pid:
                continue
            try:
                if os.getsid(int(entry.name)) == self.pid:
                    found.append(int(entry.name))
            except OSError:
                continue
        return sorted(found)

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()


def _path() -> dict:
    """Children import this tree's packages, whatever else is installed."""
    path = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


def gunicorn(
    name: str, app: str, *, port: int, env: dict, log_dir: Path, args: list[str]
) -> Process:
    """gunicorn ``args`` ``app``, listening on ``port``, ready to answer."""
    process = Process(
        name,
        [str(BIN / "gunicorn"), *args, app],
        env={"PORT": str(port), "GUNICORN_BIND": f"{HOST}:{port}", **env},
        log_dir=log_dir,
    )
    wait_for(lambda: _port_open(port), timeout=30, what=f"{name} on port {port}")
    return process


def gunicorn_settings(env: dict | None = None) -> dict:
    """workers, threads and worker class that deploy/gunicorn.conf.py gives, in ``env``."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {key: conf.get(key) for key in ("workers", "threads", "worker_class")}


def dramatiq_worker(
    name: str, modules: list[str], *, processes: int, threads: int, env: dict, log_dir: Path
) -> Process:
    """``dramatiq MODULES --processes P --threads T``, every process booted."""
    metrics = log_dir / f"{name}-metrics"
    metrics.mkdir(exist_ok=True)
    process = Process(
        name,
        [str(BIN / "dramatiq"), *modules, "--processes", str(processes), "--threads", str(threads)],
        env={
            "dramatiq_prom_host": HOST,
            "dramatiq_prom_port": str(free_port()),
            "dramatiq_prom_db": str(metrics),
            **env,
        },
        log_dir=log_dir,
    )
    process.wait_log("Worker process is ready for action.", count=processes, timeout=60)
    return process


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- the SMTP sink -----------------------------------------------------------------------


DONE_SOCKET_ENV = "BENCH_DONE_SOCKET"
_done = threading.local()


def notify_done() -> None:
    """Called by a baseline no-op job when it finishes: one datagram to the
    benchmark's DoneCounter (a Unix datagram socket blocks rather than drop)."""
    sock = getattr(_done, "sock", None)
    if sock is None:
        sock = _done.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.sendto(b".", os.environ[DONE_SOCKET_ENV])


class DoneCounter:
    """Counts ``notify_done`` calls; wall-clock times of the first and the last."""

    def __init__(self):
        self._dir = tempfile.mkdtemp(prefix="bench-done-")
        self.path = os.path.join(self._dir, "done.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind(self.path)
        self._sock.settimeout(0.5)
        self.count, self.first, self.last = 0, 0.0, 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict:
        return {DONE_SOCKET_ENV: self.path}

    def _run(self) -> None:
        while not self._stopped:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time()
            if not self.count:
                self.first = now
            self.last = now
            self.count += len(data)

    def reset(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0

    def close(self) -> None:
        self._stopped = True
        self._thread.join(2)
        self._sock.close()
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self._dir)


# --- HTTP load ---------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    started: float  # wall clock, the first request
    finished: float  # wall clock, the last response
    latencies_ms: list[float] = field(default_factory=list)
    statuses: collections.Counter = field(default_factory=collections.Counter)

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


def post_load(port: int, path: str, *, requests: int, clients: int, body, headers: dict) -> Load:
    """``requests`` POSTs from ``clients`` threads, each with a keep-alive
    connection (reopened when the server closes it, as gunicorn's sync workers
    do). ``body(i)`` gives the JSON of request ``i``."""
    headers = {"Content-Type": "application/json", **headers}
    counter = iter(range(requests))
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    results: list[tuple[float, float, int]] = []

    def client():
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        done = []
        barrier.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            payload = json.dumps(body(i)).encode()
            sent = time.time()
            try:
                connection.request("POST", path, body=payload, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                connection.close()
                status = 0
            done.append((sent, time.time(), status))
        connection.close()
        with lock:
            results.extend(done)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    load = Load(
        requests=len(results),
        started=min(sent for sent, _, _ in results),
        finished=max(answered for _, answered, _ in results),
    )
    for sent, answered, status in results:
        load.latencies_ms.append((answered - sent) * 1000)
        load.statuses[status] += 1
    return load


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100), nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- output ------------------------------------------------------------------------------


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Rows as an aligned text table; ``columns`` are (key, format spec)."""
    cells = [[key for key, _ in columns]]
    for row in rows:
        cells.append(
            ["" if row.get(key) is None else format(row[key], spec) for key, spec in columns]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for n, line in enumerate(cells):
        first = line[0].ljust(widths[0])
        lines.append(
            "  ".join([first, *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))])
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ratio: float, target: float, *, at_least: bool = True) -> str:
    met = ratio >= target if at_least else ratio <= target
    return "met" if met else "MISSED"


def sizes(argv: list[str], defaults: list[int]) -> list[int]:
    """Integers from the command line (``2_000`` or ``2000``), else ``defaults``."""
    numbers = [int(re.sub(r"[_,]", "", arg)) for arg in argv if re.fullmatch(r"[\d_,]+", arg)]
    return numbers + defaults[len(numbers) :]

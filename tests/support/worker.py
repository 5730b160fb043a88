"""A real ``dramatiq actors`` worker process for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "Worker process is ready for action."


class WorkerProcess:
    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *extra_modules: str,
        threads: int = 2,
        args: tuple[str, ...] = (),
        wait_ready: bool = True,
    ):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop)
        # Dramatiq's Prometheus exporter: a port and a metrics directory of its own,
        # so that workers of parallel tests never share either.
        self.metrics_port = int(env.get("dramatiq_prom_port") or free_port())
        metrics_dir = log_path.parent / f"{log_path.stem}-metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "dramatiq_prom_host": "127.0.0.1",
            "dramatiq_prom_port": str(self.metrics_port),
            "dramatiq_prom_db": str(metrics_dir),
            **env,
        }
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "actors",
            *extra_modules,
            "--processes",
            "1",
            "--threads",
            str(threads),
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_ready:
            self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.log_path.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.log_path.read_text(errors='replace')}")

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and child processes), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def pause(self) -> None:
        """SIGSTOP every process of the worker: a paused VM, a long GC, swapping."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def discard(self) -> None:
        """End what is left of the worker at once (a fixture's teardown, when
        nothing is checked any more): a clean stop would wait out Dramatiq's
        polling, seconds that prove nothing there."""
        if self.process.poll() is None:  # else its pid, and so its group, may be another's
            self.kill()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)  # a paused worker cannot stop
            # The main process alone: it passes SIGTERM on to its worker process,
            # which takes a second one as "kill now".
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")

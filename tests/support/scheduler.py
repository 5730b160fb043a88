"""A real ``python scheduler.py`` process for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.worker import ROOT


class SchedulerProcess:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "scheduler.py"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while "starting" not in log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scheduler did not start:\n{log_path.read_text()}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)
        self.process.wait(timeout=20)

    def discard(self) -> None:
        """End the scheduler at once (a fixture's teardown, when nothing is
        checked any more): no clean stop to wait for."""
        if self.process.poll() is None:  # else its pid, and so its group, may be another's
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        self._log.close()

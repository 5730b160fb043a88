"""py-spy around a benchmark: record a process (and its children) while the
load runs, then say where the time went, as text.

``summarize`` reads py-spy's raw (collapsed) stacks. ``focus`` keeps only the
stacks through one function (a gunicorn request, a Dramatiq message), so that
threads idling between messages do not drown the answer.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from bench.common import BIN, Process


def record(name: str, pid: int, out: Path, *, log_dir: Path, idle: bool, subprocesses: bool):
    command = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--output",
        str(out),
        "--rate",
        "100",
        "--nonblocking",
    ]
    if idle:
        command.append("--idle")
    if subprocesses:
        command.append("--subprocesses")
    return Process(name, command, env={}, log_dir=log_dir)


def stop(process: Process) -> None:
    """py-spy writes its file when interrupted."""
    if process.process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.process.wait(timeout=60)
    process.stop()


_LINE = re.compile(r":\d+\)$")


def _frames(stack: str) -> list[str]:
    return [_LINE.sub(")", frame) for frame in stack.split(";")]


def summarize(path: Path, *, focus: str | None = None, top: int = 15) -> str:
    """Top functions by self time and by inclusive time, in percent of the
    samples (of the samples through ``focus`` when given)."""
    if not path.exists():
        return f"(no profile at {path})"
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = _frames(stack)
        if focus and not any(focus in frame for frame in frames):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return f"(no samples in {path.name}{' through ' + focus if focus else ''})"
    lines = [f"{path.name}: {total} samples" + (f" through {focus}" if focus else "")]
    lines.append("  self %   function")
    for frame, n in own.most_common(top):
        lines.append(f"  {100 * n / total:6.1f}   {frame}")
    lines.append("  total %  function (inclusive)")
    for frame, n in inclusive.most_common(top + 10):
        if 100 * n / total > 99.5:
            continue  # the frames every sample passes through
        lines.append(f"  {100 * n / total:6.1f}   {frame}")
    return "\n".join(lines)

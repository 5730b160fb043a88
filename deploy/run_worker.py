"""Run a command (the dramatiq worker) so that it is signalled exactly once.

honcho stops a process by signalling its whole process group, and Ctrl-C
reaches every process of the terminal's group: either way dramatiq's worker
processes got SIGTERM twice, once directly and once from dramatiq's main
process, and a second SIGTERM makes a dramatiq worker exit at once, mid-job.
This wrapper starts the command in a session of its own and passes the first
SIGTERM or SIGINT on to it as one SIGTERM; dramatiq's main process then stops its
workers, which finish their running jobs within ``--worker-shutdown-timeout``.

    python deploy/run_worker.py dramatiq actors --processes 1 --threads 4
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    child = subprocess.Popen(argv, start_new_session=True)
    signalled = False

    def forward(signum, _frame):
        nonlocal signalled
        if not signalled:
            signalled = True
            child.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover  (PEP 475 retries for us)
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``honcho`` for ``make run``, with time for the worker to finish its jobs.

honcho sends SIGTERM on Ctrl-C, then SIGKILL to whatever still runs 5 seconds
later, which would kill a worker in the middle of an export. This runs honcho
with that wait raised to ``HONCHO_KILL_WAIT_S`` (default 70 s: the Procfile's
``--worker-shutdown-timeout`` of 60 s, plus time to close connections).

    python deploy/honcho_run.py start -f Procfile
"""

from __future__ import annotations

import os
import sys

from honcho import command, manager

manager.KILL_WAIT = int(os.environ.get("HONCHO_KILL_WAIT_S", "70"))

if __name__ == "__main__":
    sys.exit(command.main())

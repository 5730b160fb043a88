"""Loaded into a test worker (``dramatiq actors tests.support.clock_ahead``): the
process's clock runs ``CLOCK_AHEAD_S`` seconds ahead (default 120), as a machine
whose clock is off would. Every ``utcnow`` the application imported is replaced."""

import os
import sys
from datetime import timedelta

from app.db import utcnow as _real

AHEAD = timedelta(seconds=float(os.environ.get("CLOCK_AHEAD_S", "120")))


def _ahead():
    return _real() + AHEAD


for module in list(sys.modules.values()):
    if getattr(module, "utcnow", None) is _real and module.__name__.startswith("app"):
        module.utcnow = _ahead

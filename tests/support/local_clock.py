"""Setting this process's clock off, as on a machine whose clock is wrong: every
``utcnow`` the application imported reads ``app.db.utcnow`` shifted by the offset."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta

from app.db import utcnow as real_utcnow


def skewed(monkeypatch) -> Callable[[timedelta], None]:
    """Patch the application's ``utcnow``; returns the function that sets how far off it is."""
    real, off = real_utcnow, [timedelta(0)]

    def utcnow():
        return real() + off[0]

    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if (name == "app" or name.startswith("app.")) and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", utcnow)

    def set_off(by: timedelta) -> None:
        off[0] = by

    return set_off

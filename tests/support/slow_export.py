"""Loaded into a test worker (``dramatiq actors tests.support.slow_export``): makes
an export slow enough (small batches, a pause after each) that a test can watch
its progress or SIGKILL the worker while the export is being written."""

import time

from app.exports import pg_copy, service

service.BATCH_ROWS = 20
pg_copy.BATCH_ROWS = 20
_advance = service._Progress.advance


def _slow_advance(self, rows):
    _advance(self, rows)
    time.sleep(0.05)


service._Progress.advance = _slow_advance

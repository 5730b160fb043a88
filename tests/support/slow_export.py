"""Loaded into a test worker (``dramatiq actors tests.support.slow_export``): makes
an export slow enough (small batches, a pause after each) that a test can SIGKILL
the worker while the export is being written."""

import time

from app.exports import service

service.BATCH_ROWS = 20
_batches = service._post_batches


def _slow_batches(user_id):
    for batch in _batches(user_id):
        time.sleep(0.05)
        yield batch


service._post_batches = _slow_batches

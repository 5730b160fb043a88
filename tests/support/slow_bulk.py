"""Loaded into a test worker (``dramatiq actors tests.support.slow_bulk``): makes a
bulk action slow (batches of 50, a pause after each committed batch) so that a
test can SIGKILL the worker while the bulk action is half done."""

import time

from app import bulk_actions
from app.jobs import control

control.BATCH = 50
_advance = bulk_actions._Advance.__call__


def _slow_advance(self, changed):
    _advance(self, changed)
    time.sleep(0.3)


bulk_actions._Advance.__call__ = _slow_advance

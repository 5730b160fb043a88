"""Loaded into a test worker (``dramatiq actors tests.support.slow_rename``): the
export's success holds still for 3 s right after it has checked its claim and
before it puts its file in place, so that a test can send a cancel while the
finished file is being renamed."""

import time

from app.exports import files

_finished_path = files.finished_path


def _slow_finished_path(name):
    time.sleep(3)
    return _finished_path(name)


files.finished_path = _slow_finished_path

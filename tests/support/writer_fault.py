"""Loaded into a test worker (``dramatiq actors tests.support.writer_fault``): the
job-state writer meets an error it does not expect (not an ``Exception``, so no
handler for a change's errors takes it) in its first batch that records a
success, as a bug in the writer itself would."""

import threading

from app.jobs import durable, outcomes


class InjectedWriterFault(BaseException):
    pass


_run_all = durable._run_all
_once = threading.Lock()
_done = False


def _faulty_run_all(batch):
    global _done
    with _once:
        if not _done and any(p.change is outcomes.record for p in batch):
            _done = True
            raise InjectedWriterFault("injected: the writer's first success batch")
    return _run_all(batch)


durable._run_all = _faulty_run_all

"""Errors that end a job at once (``app/jobs/outcomes.py``): one that no retry
can fix fails it and dead-letters its message; a cancel cancels it."""


class PermanentError(Exception):
    """Raised for a fault that will be the same on every attempt."""


class Cancelled(Exception):
    """Raised by an attempt that stopped part way because its job was cancelled
    while it ran: the job ends ``cancelled``, not failed, and is not retried."""

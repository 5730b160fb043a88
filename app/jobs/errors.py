"""Errors that no retry can fix: an attempt that raises one fails its job at once
and its message is dead-lettered (``app/jobs/outcomes.py``)."""


class PermanentError(Exception):
    """Raised for a fault that will be the same on every attempt."""

"""Errors that no retry can fix. Actors declare ``throws=(PermanentError,)`` so
that Dramatiq's Retries fails them at once and dead-letters the message."""


class PermanentError(Exception):
    """Raised for a fault that will be the same on every attempt."""

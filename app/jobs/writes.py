"""A state write and its batch form, declared together.

A write takes requests of one type and answers each with a result. It is
declared by its batch form: a function of a sequence of requests that answers
one result per request, in order, an exception standing for an error that this
request alone met (an error raised instead belongs to the whole batch). A single
request runs as a batch of one, so the two forms cannot disagree.

``app/jobs/durable.py`` groups the requests of a process's threads by write and
runs each group as one batch, in one transaction. A write must not commit or
roll back, and must be safe to run again after a commit whose outcome was lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Write(Generic[R, T]):
    many: Callable[[Sequence[R]], Sequence[T | Exception]]

    @property
    def name(self) -> str:
        return getattr(self.many, "__qualname__", repr(self.many))

    def one(self, request: R) -> T:
        [result] = self.many([request])
        if isinstance(result, Exception):
            raise result
        return result


def batched(many: Callable[[Sequence[R]], Sequence[T | Exception]]) -> Write[R, T]:
    """Declare a write by its batch form."""
    return Write(many)


def one_at_a_time(change: Callable[[R], T]) -> Write[R, T]:
    """Declare a write that has no batch form of its own: a batch runs its
    requests in turn, and an error of one is the batch's (it is then run again
    one request at a time)."""

    def many(requests: Sequence[R]) -> list[T | Exception]:
        return [change(request) for request in requests]

    many.__qualname__ = getattr(change, "__qualname__", repr(change))
    return Write(many)

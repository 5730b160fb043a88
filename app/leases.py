"""Leases: a row that its holder owns until ``expires_at``, taken or renewed by
one conditional UPDATE that names who may change it (its holder, or anyone once
it has expired), so that of two processes at once only one gets it.

Leases are timed by the database's clock (``app.db.clock``): processes whose
clocks disagree still agree on who holds a lease and until when. A process whose
clock runs ahead neither takes over a live lease nor keeps its own for minutes
after it died; one whose clock runs behind does not wait minutes to take over a
dead one.

Two tables hold leases: ``scheduler_lease``, one named row that any scheduler
takes once it has expired (``app/scheduling/lease.py``), and ``workers``, a row
per worker process, named by its holder and renewed by it only
(``app/jobs/workers.py``). Every function runs on the caller's session or
connection and leaves the commit to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Row, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute

from app.db import clock

# Given up leases end this long before now: at once, for any clock reading.
RELEASED = timedelta(seconds=-1)


@dataclass(frozen=True)
class LeaseTable:
    """Where leases are kept: ``name`` is the column that picks a lease's row;
    ``holder`` the column that says who holds it, or None where every row is
    named by its holder and is never taken over by another."""

    name: InstrumentedAttribute
    holder: InstrumentedAttribute | None = None

    @property
    def model(self) -> type[Any]:
        # A column of a mapped class, never of an alias: its class is the model.
        return cast(type[Any], self.name.class_)

    def take(
        self,
        session,
        name: str,
        ttl: timedelta,
        *,
        holder: str | None = None,
        values: dict[str, Any] | None = None,
        created: dict[str, Any] | None = None,
    ) -> bool:
        """Take the lease ``name`` for ``ttl`` from now, or renew it; True when
        ``holder`` has it. ``values`` are written with it, and ``created`` as well
        when its row is made. A row made at the same moment by another (on a
        table with a holder) raises IntegrityError."""
        engine = _engine(session)
        values = {**(values or {}), "expires_at": clock(engine, plus=ttl)}
        whose = self.name == name
        if self.holder is not None:
            whose &= or_(self.holder == holder, self.model.expires_at < clock(engine))
            values[self.holder.key] = holder
        if session.execute(_quick(update(self.model).where(whose).values(values))).rowcount:
            return True
        if (
            self.holder is not None
            and session.execute(select(self.name).where(self.name == name)).first()
        ):
            return False  # another holds it
        row = {**values, **(created or {}), self.name.key: name}
        session.execute(insert(self.model).values(row))
        return True

    def release(self, session, name: str, *, holder: str | None = None) -> None:
        """Give the lease up at once, if ``holder`` has it: anyone may take it now."""
        whose = self.name == name
        if self.holder is not None:
            whose &= self.holder == holder
        until = clock(_engine(session), plus=RELEASED)
        session.execute(_quick(update(self.model).where(whose).values(expires_at=until)))

    def live(self, session, name: str) -> Row | None:
        """The lease's ``holder`` and ``expires_at`` while it has not expired."""
        holder = self.name if self.holder is None else self.holder
        now = clock(_engine(session))
        return session.execute(
            select(holder.label("holder"), self.model.expires_at).where(
                self.name == name, self.model.expires_at > now
            )
        ).first()


def _engine(session) -> Engine:
    return session.engine if isinstance(session, Connection) else session.get_bind()


def _quick(statement):
    """No ORM bookkeeping: the values are the database's to compute, and nothing
    reads the row through the session's objects."""
    return statement.execution_options(synchronize_session=False)

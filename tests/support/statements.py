"""The SQL statements an engine sends, counted while a block runs."""

from __future__ import annotations

from sqlalchemy import event


class Statements:
    """The SQL statements an engine runs while counting."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(statement)

    def count(self, verb: str) -> int:
        return sum(statement.split()[0].upper() == verb for statement in self.seen)

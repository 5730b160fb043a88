"""Lists of values as statement parameters, in statements of one shape.

A statement that changes many rows at once, each with values of its own (a
batch of claims, of outcomes), or that names a list of ids, must keep its text
whatever the number of rows: then SQLAlchemy compiles it once, psycopg prepares
it on the server after a few runs, and no VALUES or IN list of a new length
costs a compilation. So a list is one parameter:

- on PostgreSQL, an array per column: ``unnest(:a, :b) AS t(a, b)``, ``= ANY(:ids)``;
- on SQLite, a JSON array: ``json_each(:rows)``, ``IN (SELECT value FROM json_each(:ids))``.

A statement built from these is built once per dialect (``functools.cache`` on
its builder) and run with the parameters that ``Rows.params`` and
``Ids.params`` make of the values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    FromClause,
    String,
    any_,
    bindparam,
    cast,
    column,
    func,
    select,
    type_coerce,
)
from sqlalchemy.types import TypeEngine

POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Rows:
    """A table ``name`` of ``columns`` (name → SQL type) given as one parameter."""

    name: str
    columns: dict[str, TypeEngine]

    def table(self, dialect: str) -> FromClause:
        if dialect == POSTGRESQL:
            arrays = [
                cast(bindparam(f"{self.name}_{key}", type_=ARRAY(kind)), ARRAY(kind))
                for key, kind in self.columns.items()
            ]
            typed = [column(key, kind) for key, kind in self.columns.items()]
            return func.unnest(*arrays).table_valued(*typed).render_derived(name=self.name)
        each = func.json_each(bindparam(self.name, type_=String())).table_valued("value")
        fields = [
            type_coerce(func.json_extract(each.c.value, f"$[{i}]"), kind).label(key)
            for i, (key, kind) in enumerate(self.columns.items())
        ]
        return select(*fields).select_from(each).subquery(self.name)

    def params(self, dialect: str, data: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """The parameters for ``data``, one tuple of values per row."""
        if dialect == POSTGRESQL:
            return {
                f"{self.name}_{key}": [row[i] for row in data] for i, key in enumerate(self.columns)
            }
        return {self.name: json.dumps([list(row) for row in data])}


@dataclass(frozen=True)
class Ids:
    """A list of values of one type, given as one parameter ``name``."""

    name: str
    kind: TypeEngine

    def contains(self, dialect: str, column_: Any) -> ColumnElement[bool]:
        if dialect == POSTGRESQL:
            listed = cast(bindparam(self.name, type_=ARRAY(self.kind)), ARRAY(self.kind))
            return column_ == any_(listed)
        each = func.json_each(bindparam(self.name, type_=String())).table_valued("value")
        return column_.in_(select(each.c.value))

    def params(self, dialect: str, items: Sequence[Any]) -> dict[str, Any]:
        return {self.name: list(items) if dialect == POSTGRESQL else json.dumps(list(items))}


def one_of(dialect: str, column_: Any, items: Sequence[Any]) -> ColumnElement[bool]:
    """``column_`` is one of ``items``, for a statement built on each call:
    ``= ANY(array)`` on PostgreSQL, so that its text stays the same."""
    if dialect == POSTGRESQL:
        kind = column_.type
        return column_ == any_(cast(bindparam(None, list(items), type_=ARRAY(kind)), ARRAY(kind)))
    return column_.in_(items)


def json_text(value: Any) -> str | None:
    """A JSON value as a text column of ``Rows`` (SQL NULL for None), which
    ``json_from_text`` turns back into JSON."""
    return None if value is None else json.dumps(value)


def json_from_text(dialect: str, expression: Any) -> Any:
    """A cast on PostgreSQL; on SQLite, whose CAST would read the text as a
    number, the text as it is (SQLite keeps JSON as text)."""
    if dialect == POSTGRESQL:
        return cast(expression, JSON)
    return type_coerce(expression, JSON)

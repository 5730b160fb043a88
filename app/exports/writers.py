"""One writer per format behind one interface: ``write(path, columns, batches)``
consumes an iterable of row batches and writes them as they come, so memory
stays flat however many rows there are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

import xlsxwriter

Batch = Sequence[Sequence]

# An Excel cell holds at most this many characters, a sheet at most this many rows.
XLSX_MAX_CELL = 32767
XLSX_MAX_ROWS = 1_048_576


# A spreadsheet opening a CSV file runs a cell that starts with one of these as a
# formula (CSV injection: a post's body could fetch URLs or run commands on the
# machine of whoever opens an export). OWASP's advice: prefix such a cell with a
# single quote, so it is read as text. ``pg_copy`` does the same in its SQL.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def _csv_field(value) -> str:
    """One field as PostgreSQL's COPY (FORMAT csv) writes it: quoted when it holds
    a comma, a quote, CR or LF (Python's csv module leaves a lone CR unquoted, which
    splits the record), or is empty text (COPY writes NULL as nothing, text '' as "")."""
    value = _plain(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    if value == "" or _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_csv(path: str, columns: Sequence[str], batches: Iterable[Batch]) -> None:
    """RFC 4180 quoting (fields with commas, quotes or line breaks quoted, quotes
    doubled), UTF-8 without a byte-order mark, text that a spreadsheet would take
    for a formula quoted (``FORMULA_STARTS``). Records end in LF. Byte for byte what
    PostgreSQL's COPY writes (see ``pg_copy``), so both backends give the same file."""
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.write(",".join(_csv_field(name) for name in columns) + "\n")
        for batch in batches:
            file.write("".join(",".join(map(_csv_field, row)) + "\n" for row in batch))


def write_json(path: str, columns: Sequence[str], batches: Iterable[Batch]) -> None:
    """One JSON array of objects, written element by element."""
    encoder = json.JSONEncoder(ensure_ascii=False, default=_plain)
    with open(path, "w", encoding="utf-8") as file:
        file.write("[")
        separator = "\n"
        for batch in batches:
            for row in batch:
                file.write(separator)
                file.write(encoder.encode(dict(zip(columns, row, strict=True))))
                separator = ",\n"
        file.write("\n]\n")


def write_xlsx(
    path: str,
    columns: Sequence[str],
    batches: Iterable[Batch],
    *,
    rows_per_sheet: int = XLSX_MAX_ROWS,
) -> None:
    """XlsxWriter's constant-memory mode flushes each row to disk as it is written.
    Every string is written as a string: never a formula, number or link (the
    ``strings_to_*`` options), so a body such as ``=HYPERLINK(...)`` stays text.
    Past a sheet's row limit the rows go on in further sheets (``export``,
    ``export 2``, ...), each with the header row, so no row is ever dropped."""
    workbook = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    try:
        sheets = 0
        number = rows_per_sheet  # start a sheet at the first row
        for batch in batches:
            for row in batch:
                if number == rows_per_sheet:
                    sheets += 1
                    sheet = workbook.add_worksheet("export" if sheets == 1 else f"export {sheets}")
                    sheet.write_row(0, 0, columns)
                    number = 1
                sheet.write_row(number, 0, [_cell(value) for value in row])
                number += 1
        if sheets == 0:
            workbook.add_worksheet("export").write_row(0, 0, columns)
    finally:
        workbook.close()


def _cell(value):
    value = _plain(value)
    if isinstance(value, str):
        return value[:XLSX_MAX_CELL]
    return value


WRITERS = {"csv": write_csv, "json": write_json, "xlsx": write_xlsx}
MIMETYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

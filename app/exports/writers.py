"""One writer per format behind one interface: ``write(path, columns, batches)``
consumes an iterable of row batches and writes them as they come, so memory
stays flat however many rows there are."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import datetime

import xlsxwriter

Batch = Sequence[Sequence]

# An Excel cell holds at most this many characters.
XLSX_MAX_CELL = 32767


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def write_csv(path: str, columns: Sequence[str], batches: Iterable[Batch]) -> None:
    """RFC 4180 quoting (fields with commas, quotes or line breaks quoted, quotes
    doubled), UTF-8 without a byte-order mark. Records end in LF, as PostgreSQL's
    COPY writes them (see ``pg_copy``), so both backends give the same file."""
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        for batch in batches:
            writer.writerows([[_plain(value) for value in row] for row in batch])


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


def write_xlsx(path: str, columns: Sequence[str], batches: Iterable[Batch]) -> None:
    """XlsxWriter's constant-memory mode flushes each row to disk as it is written."""
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
        sheet = workbook.add_worksheet("export")
        sheet.write_row(0, 0, columns)
        number = 1
        for batch in batches:
            for row in batch:
                sheet.write_row(number, 0, [_cell(value) for value in row])
                number += 1
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

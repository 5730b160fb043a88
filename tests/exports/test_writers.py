"""Each format round-trips: parse the file back and get the posts."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from app.exports.writers import WRITERS, write_xlsx
from tests.exports.conftest import TRICKY_BODIES, as_csv_text

COLUMNS = ("id", "body", "created_at")
WHEN = datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC)
ROWS = [(n + 1, body, WHEN) for n, body in enumerate(TRICKY_BODIES)]


def read_back(fmt: str, path) -> list[tuple]:
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as file:
            header, *rows = list(csv.reader(file))
        assert header == list(COLUMNS)
        return [(int(i), body, created) for i, body, created in rows]
    if fmt == "json":
        with open(path, encoding="utf-8") as file:
            items = json.load(file)
        return [(item["id"], item["body"], item["created_at"]) for item in items]
    sheet = load_workbook(path, read_only=True).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert header == COLUMNS
    return [(i, ooxml_unescape(body or ""), created) for i, body, created in rows]


def ooxml_unescape(text: str) -> str:
    """XLSX stores control characters such as CR as _xHHHH_ (ECMA-376 ST_Xstring);
    Excel decodes them, openpyxl leaves them as they are."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def batches(rows, size=3):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_tricky_bodies_round_trip(fmt, tmp_path):
    path = tmp_path / f"out.{fmt}"
    WRITERS[fmt](str(path), COLUMNS, batches(ROWS))
    text = as_csv_text if fmt == "csv" else str
    assert read_back(fmt, path) == [(i, text(body), WHEN.isoformat()) for i, body, _ in ROWS]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_zero_rows_give_a_valid_empty_file(fmt, tmp_path):
    path = tmp_path / f"empty.{fmt}"
    WRITERS[fmt](str(path), COLUMNS, iter(()))
    assert read_back(fmt, path) == []


def test_csv_follows_rfc_4180_quoting(tmp_path):
    path = tmp_path / "out.csv"
    WRITERS["csv"](str(path), COLUMNS, [[(1, 'a "b", c', WHEN)]])
    raw = path.read_bytes()
    assert raw.startswith(b"id,body,created_at\n")
    assert b'1,"a ""b"", c",2026-11-21T12:30:45.123456+00:00\n' in raw
    assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark


def test_xlsx_past_the_sheet_row_limit_goes_on_in_further_sheets(tmp_path):
    # Given a sheet that holds a header and 3 rows (the real limit is 1,048,576)
    path = tmp_path / "many.xlsx"
    rows = [(i, f"post {i}") for i in range(8)]

    # When 8 rows are written
    write_xlsx(str(path), ("id", "body"), [rows[:5], rows[5:]], rows_per_sheet=4)

    # Then every row is there, in order, over three sheets that each start with the header
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["export", "export 2", "export 3"]
    found = []
    for sheet in book.worksheets:
        values = list(sheet.iter_rows(values_only=True))
        assert values[0] == ("id", "body")
        found.extend(values[1:])
    assert found == rows

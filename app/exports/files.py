"""Where export files live and what they are called.

A finished export's file is ``EXPORT_DIR/<export id>.<format>``. Each attempt
writes it first as ``EXPORT_DIR/.partial/<export id>.<token>.<format>``, a name
of its own (the token is its claim's), and renames it into place when whole.

EXPORT_DIR may be shared with other files, so what is an export's is told by
its name: ``finished_export_id`` reads a finished file's name back, and
``partial_export_id`` a partial file's (everything under ``.partial`` is an
attempt's)."""

from __future__ import annotations

import re
from pathlib import Path

from flask import current_app

from app.models import EXPORT_FORMATS, Export

PARTIAL_DIR = ".partial"

_UUID = r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
_FINISHED = re.compile(rf"^({_UUID})\.(?:{'|'.join(map(re.escape, EXPORT_FORMATS))})$")


def export_dir() -> Path:
    return Path(current_app.config["EXPORT_DIR"])


def partial_dir() -> Path:
    return export_dir() / PARTIAL_DIR


def finished_name(export_id: str, fmt: str) -> str:
    """The name a finished export's file gets (kept in ``Export.file_name``)."""
    return f"{export_id}.{fmt}"


def finished_path(name: str) -> Path:
    """The finished file of that name (an ``Export.file_name``)."""
    return export_dir() / name


def file_path(export: Export) -> Path:
    """A succeeded export's file (the others have no ``file_name``)."""
    if export.file_name is None:
        raise ValueError(f"export {export.id} has no file")
    return finished_path(export.file_name)


def partial_path(export_id: str, token: str, fmt: str) -> Path:
    """Where one attempt, known by ``token``, writes the export's file."""
    return partial_dir() / f"{export_id}.{token}.{fmt}"


def finished_export_id(name: str) -> str | None:
    """The export id in a file name of the finished form; None for any other name."""
    match = _FINISHED.match(name)
    return match[1] if match else None


def partial_export_id(name: str) -> str:
    """The export a partial file is for, as named by ``partial_path``."""
    return name.split(".", 1)[0]

"""Checks of deploy/ with the tools operators use: ``make test`` installs them
where it can (``make tools``); a missing one skips here and fails under CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture()
def tool():
    def find(name: str, package: str) -> str:
        # Debian puts some (nginx) in /usr/sbin, off a user's PATH.
        path = shutil.which(name, path=os.pathsep.join([os.environ["PATH"], "/usr/sbin", "/sbin"]))
        if path is None:
            unavailable(f"{name} is not installed (Debian package {package!r}; `make tools`)")
        return path

    return find

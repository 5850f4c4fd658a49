"""What the evaluation tests share."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def home() -> Iterator[Path]:
    """An evaluation's home, under the system temp dir, not pytest's private one: the embedded
    PostgreSQL's user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="deksdenflow-eval-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

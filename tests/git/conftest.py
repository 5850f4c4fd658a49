"""Fixtures of the git tests: real ``git``, a local bare repository as the remote, a fresh cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from deksdenflow_git import Git, GitIdentity, MirrorCache

from tests.git.origin import ISOLATED_GIT_ENV, Origin


@pytest.fixture
def git() -> Git:
    """A runner committing as a test bot, blind to the machine's git config."""
    return Git(identity=GitIdentity("Test Bot", "bot@example.com"), env=ISOLATED_GIT_ENV)


@pytest.fixture
async def origin(tmp_path: Path, git: Git) -> Origin:
    """A bare remote with one commit on ``main``."""
    return await Origin.create(tmp_path / "origin.git", git)


@pytest.fixture
def cache(tmp_path: Path, git: Git) -> MirrorCache:
    """A worker's cache, empty at first."""
    return MirrorCache(tmp_path / "cache", git)

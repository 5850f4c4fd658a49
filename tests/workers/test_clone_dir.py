"""Where onboarding puts a project's working clone: always inside the projects root."""

from __future__ import annotations

from pathlib import Path

import pytest
from deksdenflow_git_ci_worker.jobs.onboarding import clone_dir


@pytest.mark.parametrize(
    ("git_url", "expected"),
    [
        ("https://github.com/acme/demo.git", "github.com/acme/demo"),
        ("ssh://git@gitlab.example.com/group/sub/repo.git", "gitlab.example.com/group/sub/repo"),
        ("git@github.com:acme/demo.git", "github.com/acme/demo"),
        ("file:///srv/git/demo.git", "local/p1"),
        ("/srv/git/demo.git", "local/p1"),
    ],
)
def test_a_working_clone_goes_under_host_and_path(git_url: str, expected: str) -> None:
    assert clone_dir(git_url, "p1") == Path(expected)


@pytest.mark.parametrize(
    "git_url",
    [
        "https://github.com/../../../owner/repo.git",
        "https://github.com/acme/../../../../etc.git",
        "git@github.com:../../../tmp/x.git",
        "https://github.com/./..",
    ],
)
def test_a_url_never_reaches_outside_the_projects_root(git_url: str, tmp_path: Path) -> None:
    root = tmp_path / "projects"
    target = (root / clone_dir(git_url, "p1")).resolve()
    assert target.is_relative_to(root.resolve()), target
    assert target != root.resolve()

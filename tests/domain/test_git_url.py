"""The rule that registers a project refuses a git URL with credentials, whoever sends the command."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.domain.git_url import GitUrlHasCredentials, check_git_url
from deksdenflow_core.domain.project import ProjectState, decide_project

from tests.domain.builders import ctx


@pytest.mark.parametrize(
    "url",
    [
        "https://u:p4ssword@host/r.git",
        "https://token0123456789@host/r.git",
        "HTTPS://u:p@host/r.git",
        "ftp://u@host/r.git",
        "ssh://git:p4ssword@host/r.git",
        "u:p4ssword@host:owner/r.git",
        "https://u%3Ap@host/r.git",
    ],
)
def test_decide_refuses_a_git_url_with_credentials(url: str) -> None:
    with pytest.raises(GitUrlHasCredentials) as refused:
        decide_project(ProjectState(project_id="p"), pcmd.RegisterProject(name="n", git_url=url), ctx())
    assert "p4ssword" not in str(refused.value)
    assert "token0123" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["ssh://git@host/o/r.git", "git@host:o/r.git", "host:o/r.git", "https://host/o/r.git", "/srv/r", "r"],
)
def test_a_git_url_without_credentials_passes(url: str) -> None:
    assert check_git_url(f"  {url} ") == url

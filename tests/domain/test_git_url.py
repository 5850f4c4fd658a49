"""The one git URL parser, and the rule that registers a project refusing a git URL with credentials,
whoever sends the command."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.domain.git_url import GitUrl, GitUrlHasCredentials, check_git_url
from deksdenflow_core.domain.project import ProjectState, decide_project
from deksdenflow_core.errors import InvalidCommand

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
    [
        "ssh://git@host/o/r.git",
        "git@host:o/r.git",
        "host:o/r.git",
        "https://host/o/r.git",
        "/srv/r",
        "file:///srv/r",
    ],
)
def test_a_git_url_without_credentials_passes(url: str) -> None:
    assert check_git_url(f"  {url} ") == url


@pytest.mark.parametrize(
    ("text", "form", "user", "host", "repo_path", "has_credentials"),
    [
        ("https://GitHub.com/Acme/Demo.git", "url", None, "github.com", "Acme/Demo", False),
        ("  ssh://git@ghe.example:2222/acme/demo.git ", "url", "git", "ghe.example", "acme/demo", False),
        ("https://oauth2:t0ken@gitlab.com/g/sub/p.git", "url", "oauth2", "gitlab.com", "g/sub/p", True),
        ("https://t0ken@github.com/acme/demo", "url", "t0ken", "github.com", "acme/demo", True),
        ("git@github.com:acme/demo.git", "scp", "git", "github.com", "acme/demo", False),
        ("github.com:acme/demo", "scp", None, "github.com", "acme/demo", False),
        ("user:pw@host:acme/demo", "scp", "user:pw", "host", "acme/demo", True),
        ("/srv/git/demo.git", "path", None, "", "srv/git/demo", False),
        ("acme/demo", "path", None, "", "acme/demo", False),
    ],
)
def test_one_parser_reads_every_form_of_git_address(
    text: str, form: str, user: str | None, host: str, repo_path: str, has_credentials: bool
) -> None:
    url = GitUrl.parse(text)
    assert (url.text, url.form, url.user, url.host) == (text.strip(), form, user, host)
    assert url.repo_path == repo_path
    assert url.has_credentials is has_credentials
    assert not url.problem


def test_a_malformed_url_is_a_problem_not_an_exception() -> None:
    assert GitUrl.parse("https://github.com:port/acme/demo").problem
    assert GitUrl.parse("https://[::1/acme/demo").problem


@pytest.mark.parametrize("url", ["r", "./hello.git", "../repos/r.git", "repos/r"])
def test_a_relative_path_is_refused_for_it_means_nothing_where_the_workers_run(url: str) -> None:
    with pytest.raises(InvalidCommand, match="relative path: give an absolute path or a file:// URL"):
        check_git_url(url)

"""Reading a project's git URL into the forge repository it names, and picking the client for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from deksdenflow_core.errors import ConfigurationError, MissingDependency
from deksdenflow_git.forges import (
    GitHubForge,
    GitLabForge,
    InvalidRepoUrl,
    RepoRef,
    make_forge,
    parse_repo,
)


@pytest.mark.parametrize(
    ("url", "provider", "host", "path"),
    [
        ("https://github.com/acme/widgets", "github", "github.com", "acme/widgets"),
        ("https://github.com/acme/widgets.git", "github", "github.com", "acme/widgets"),
        ("https://github.com/acme/widgets/", "github", "github.com", "acme/widgets"),
        ("https://user:secret@github.com/acme/widgets.git", "github", "github.com", "acme/widgets"),
        ("git@github.com:acme/widgets.git", "github", "github.com", "acme/widgets"),
        ("ssh://git@github.com/acme/widgets.git", "github", "github.com", "acme/widgets"),
        ("ssh://git@ghe.corp.example:2222/acme/widgets.git", "github", "ghe.corp.example", "acme/widgets"),
        ("https://gitlab.com/platform/backend/api.git", "gitlab", "gitlab.com", "platform/backend/api"),
        (
            "git@gitlab.example.com:platform/backend/api.git",
            "gitlab",
            "gitlab.example.com",
            "platform/backend/api",
        ),
        ("https://git.corp.example:8443/team/app", "gitlab", "git.corp.example", "team/app"),
    ],
)
def test_supported_url_forms(url: str, provider: str, host: str, path: str) -> None:
    assert parse_repo(url, provider) == RepoRef(provider=provider, host=host, path=path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "provider", "says"),
    [
        ("", "github", "cannot read a repository"),
        ("/srv/git/widgets.git", "github", "cannot read a repository"),
        ("file:///srv/git/widgets.git", "github", "cannot read a repository"),
        ("https://github.com/acme", "github", "exactly owner/repo"),
        ("https://github.com/acme/widgets/tree/main", "github", "exactly owner/repo"),
        ("https://gitlab.com/lonely", "gitlab", "at least group/project"),
        ("https://github.com/acme/../widgets", "github", "cannot read a repository"),
        ("https://github.com/acme/widgets", "bitbucket", "unknown forge provider"),
    ],
)
def test_unusable_urls_raise_a_value_error_that_says_why(url: str, provider: str, says: str) -> None:
    with pytest.raises(InvalidRepoUrl) as caught:
        parse_repo(url, provider)
    assert says in caught.value.message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ConfigurationError)
    assert not caught.value.retryable


async def test_make_forge_uses_rest_when_a_token_is_configured() -> None:
    github = make_forge("github", "git@github.com:acme/widgets.git", token="t", api_base_url=None)
    gitlab = make_forge("gitlab", "https://gitlab.com/a/b.git", token="t", api_base_url="https://gl.example")
    try:
        assert isinstance(github, GitHubForge)
        assert isinstance(gitlab, GitLabForge)
        assert (github.provider, gitlab.provider) == ("github", "gitlab")
    finally:
        await github.aclose()
        await gitlab.aclose()


@pytest.mark.parametrize(
    ("provider", "binary", "token_name"), [("github", "gh", "GH_PAT"), ("gitlab", "glab", None)]
)
def test_without_a_token_or_the_cli_make_forge_says_what_to_install_or_set(
    provider: str, binary: str, token_name: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependency) as caught:
        make_forge(provider, "https://host.example/a/b.git", token=None, token_name=token_name)
    message = caught.value.message
    assert f"the {binary} CLI is not on PATH" in message
    assert (token_name or f"{provider.upper()}_TOKEN") in message

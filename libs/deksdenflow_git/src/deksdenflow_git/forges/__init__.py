"""Forge clients: GitHub and GitLab REST, with gh/glab as fallback, behind one ``Forge`` protocol."""

from __future__ import annotations

from deksdenflow_core.domain.provider import ProviderName

from deksdenflow_git.forges.base import (
    DEFAULT_TOKEN_NAMES,
    CiFailure,
    CiState,
    CiStatus,
    Comment,
    Forge,
    ForgeAuthError,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    InvalidRepoUrl,
    LineComment,
    MergeMethod,
    MergeResult,
    PullRequest,
    PullRequestState,
    RepoRef,
    Reviews,
    parse_repo,
)
from deksdenflow_git.forges.cli import GhCli, GlabCli
from deksdenflow_git.forges.github import GitHubForge
from deksdenflow_git.forges.gitlab import GitLabForge

__all__ = [
    "DEFAULT_TOKEN_NAMES",
    "CiFailure",
    "CiState",
    "CiStatus",
    "Comment",
    "Forge",
    "ForgeAuthError",
    "ForgeError",
    "ForgeNotFound",
    "ForgeUnavailable",
    "GhCli",
    "GitHubForge",
    "GitLabForge",
    "GlabCli",
    "InvalidRepoUrl",
    "LineComment",
    "MergeMethod",
    "MergeResult",
    "ProviderName",
    "PullRequest",
    "PullRequestState",
    "RepoRef",
    "Reviews",
    "make_forge",
    "parse_repo",
]


def make_forge(
    provider: str,
    git_url: str,
    *,
    token: str | None,
    api_base_url: str | None = None,
    token_name: str | None = None,
    timeout: float = 30.0,
    cli_timeout: float = 120.0,
) -> Forge:
    """The forge client for a project: REST when a token is configured, else the gh/glab CLI.

    ``token_name`` is how the configuration calls the token (an env var or secret name); errors name it
    so an operator knows what to fix, and never show the token itself. ``api_base_url`` overrides the
    API root (GitHub Enterprise ``https://host/api/v3``, a self-hosted GitLab ``https://host[/prefix]``);
    by default it follows the repository's host. Raises ``InvalidRepoUrl`` for a URL that names no
    repository and ``MissingDependency`` when neither a token nor the CLI is available.
    """
    repo = parse_repo(git_url, provider)
    name = token_name or DEFAULT_TOKEN_NAMES[repo.provider]
    if repo.provider == "github":
        if token:
            return GitHubForge(repo, token=token, api_base_url=api_base_url, token_name=name, timeout=timeout)
        return GhCli(repo, token_name=name, timeout=cli_timeout)
    if token:
        return GitLabForge(repo, token=token, api_base_url=api_base_url, token_name=name, timeout=timeout)
    return GlabCli(repo, token_name=name, timeout=cli_timeout)

"""Fixtures for the forge clients: the local fake GitHub and GitLab servers and clients pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_fakes.gitlab import FakeGitLab
from deksdenflow_git.forges import GitHubForge, GitLabForge, parse_repo

GITHUB_TOKEN = "ghp_fakeSecretToken123"
GITLAB_TOKEN = "glpat-fakeSecretToken456"
GITHUB_REPO = "acme/widgets"
GITLAB_PROJECT = "platform/backend/api"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=GITHUB_TOKEN) as fake:
        yield fake


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(token=GITLAB_TOKEN) as fake:
        yield fake


@pytest.fixture
async def github_forge(github: FakeGitHub) -> AsyncIterator[GitHubForge]:
    repo = parse_repo(f"https://github.com/{GITHUB_REPO}.git", "github")
    forge = GitHubForge(repo, token=GITHUB_TOKEN, api_base_url=github.api_url)
    yield forge
    await forge.aclose()


@pytest.fixture
async def gitlab_forge(gitlab: FakeGitLab) -> AsyncIterator[GitLabForge]:
    repo = parse_repo(f"git@gitlab.example.com:{GITLAB_PROJECT}.git", "gitlab")
    forge = GitLabForge(repo, token=GITLAB_TOKEN, api_base_url=gitlab.base_url)
    yield forge
    await forge.aclose()

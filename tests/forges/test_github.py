"""The GitHub REST client against the fake GitHub: the requests it sends and how it reads the answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from deksdenflow_fakes.github import Dispatch, FakeGitHub
from deksdenflow_fakes.httpserver import Reply
from deksdenflow_git.forges import (
    CiStatus,
    ForgeAuthError,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    GitHubForge,
    parse_repo,
)
from deksdenflow_git.forges.github import github_api_base

from tests.forges.conftest import GITHUB_REPO, GITHUB_TOKEN

BRANCH = "0007-add-search"
SHA = "a" * 40


async def _open(forge: GitHubForge) -> None:
    await forge.open_draft_pull_request(branch=BRANCH, base="main", title="WIP: 0007 - add search", body="b")


def _forge(api_base_url: str, *, token: str = GITHUB_TOKEN, timeout: float = 5.0) -> GitHubForge:
    repo = parse_repo(f"git@github.com:{GITHUB_REPO}.git", "github")
    return GitHubForge(repo, token=token, api_base_url=api_base_url, timeout=timeout)


# --- pull requests ------------------------------------------------------------------------------------


async def test_open_draft_pull_request_sends_what_github_documents(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    pr = await github_forge.open_draft_pull_request(
        branch=BRANCH, base="main", title="WIP: 0007 - add search", body="See .protocols/0007-add-search/"
    )

    lookup, create = github.requests
    assert (lookup.method, lookup.path) == ("GET", f"/repos/{GITHUB_REPO}/pulls")
    assert lookup.param("head") == f"acme:{BRANCH}"
    assert lookup.param("state") == "open"
    assert (create.method, create.path) == ("POST", f"/repos/{GITHUB_REPO}/pulls")
    assert create.header("authorization") == f"Bearer {GITHUB_TOKEN}"
    assert create.header("accept") == "application/vnd.github+json"
    assert create.header("x-github-api-version") == "2022-11-28"
    assert create.header("user-agent")
    assert create.json() == {
        "title": "WIP: 0007 - add search",
        "head": BRANCH,
        "base": "main",
        "body": "See .protocols/0007-add-search/",
        "draft": True,
    }
    stored = github.prs(GITHUB_REPO)[0]
    assert pr.number == stored.number == 1
    assert pr.url == f"{github.url}/{GITHUB_REPO}/pull/1"
    assert (pr.state, pr.draft, pr.reused, pr.head_branch, pr.head_sha) == (
        "open",
        True,
        False,
        BRANCH,
        stored.head_sha,
    )


async def test_an_open_pull_request_for_the_branch_is_reused_without_creating_one(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    existing = github.add_pull(GITHUB_REPO, head=BRANCH, draft=False)
    github.add_pull(GITHUB_REPO, head="0008-other")

    pr = await github_forge.open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert (pr.number, pr.reused, pr.draft) == (existing.number, True, False)
    assert github.requests_to("POST", "/") == []
    assert len(github.prs(GITHUB_REPO)) == 2


async def test_already_exists_on_create_reuses_the_pull_request_another_worker_opened(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    other = github.add_pull(GITHUB_REPO, head=BRANCH)
    # Our lookup ran before the other worker's PR existed: GitHub then answers our POST with 422.
    github.fail_next(Reply.json(200, []))

    pr = await github_forge.open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert [(r.method, r.path) for r in github.requests] == [
        ("GET", f"/repos/{GITHUB_REPO}/pulls"),
        ("POST", f"/repos/{GITHUB_REPO}/pulls"),
        ("GET", f"/repos/{GITHUB_REPO}/pulls"),
    ]
    assert (pr.number, pr.reused) == (other.number, True)
    assert len(github.prs(GITHUB_REPO)) == 1


async def test_another_validation_failure_is_a_non_retryable_error_with_githubs_reason(
    github_forge: GitHubForge,
) -> None:
    with pytest.raises(ForgeError) as caught:
        await github_forge.open_draft_pull_request(branch="main", base="main", title="t", body="b")
    assert not caught.value.retryable
    assert "422" in caught.value.message
    assert "No commits between main and main" in caught.value.message


async def test_get_pull_request_reports_open_merged_and_closed(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    merged = github.add_pull(GITHUB_REPO, head="0001-a")
    closed = github.add_pull(GITHUB_REPO, head="0002-b")
    still_open = github.add_pull(GITHUB_REPO, head="0003-c")
    github.merge(GITHUB_REPO, merged.number)
    github.close(GITHUB_REPO, closed.number)

    assert (await github_forge.get_pull_request(merged.number)).state == "merged"
    assert (await github_forge.get_pull_request(closed.number)).state == "closed"
    assert (await github_forge.get_pull_request(still_open.number)).state == "open"
    assert github.requests[-1].path == f"/repos/{GITHUB_REPO}/pulls/{still_open.number}"


async def test_find_open_pull_request_ignores_closed_ones(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    old = github.add_pull(GITHUB_REPO, head=BRANCH)
    github.close(GITHUB_REPO, old.number)

    assert await github_forge.find_open_pull_request(BRANCH) is None


# --- errors -------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_a_non_retryable_error_naming_the_token_but_not_showing_it(
    github: FakeGitHub,
) -> None:
    forge = _forge(github.api_url, token="ghp_wrongWrongWrong999")
    try:
        with pytest.raises(ForgeAuthError) as caught:
            await _open(forge)
    finally:
        await forge.aclose()
    error = caught.value
    assert not error.retryable
    assert "check the token named GITHUB_TOKEN" in error.message
    assert "Bad credentials" in error.message
    shown = f"{error} {error.to_dict()}"
    assert "ghp_wrongWrongWrong999" not in shown
    assert GITHUB_TOKEN not in shown


async def test_a_forbidden_answer_asks_to_check_the_token_permissions(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    github.fail_next(Reply.json(403, {"message": "Resource not accessible by personal access token"}))
    with pytest.raises(ForgeAuthError) as caught:
        await _open(github_forge)
    assert not caught.value.retryable
    assert "GITHUB_TOKEN" in caught.value.message
    assert "Resource not accessible" in caught.value.message


async def test_a_rate_limit_is_retryable(github: FakeGitHub, github_forge: GitHubForge) -> None:
    github.fail_next(
        Reply.json(403, {"message": "API rate limit exceeded"}, headers={"x-ratelimit-remaining": "0"})
    )
    with pytest.raises(ForgeUnavailable) as caught:
        await _open(github_forge)
    assert caught.value.retryable


async def test_server_errors_are_retryable_and_the_next_attempt_succeeds(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    github.fail_next(Reply.json(502, {"message": "Server Error"}))
    with pytest.raises(ForgeUnavailable) as caught:
        await _open(github_forge)
    assert caught.value.retryable
    assert "502" in caught.value.message

    await _open(github_forge)
    assert len(github.prs(GITHUB_REPO)) == 1


async def test_an_unknown_repository_is_a_non_retryable_error_naming_it() -> None:
    with FakeGitHub(token=GITHUB_TOKEN, repos=["acme/other"]) as github:
        forge = _forge(github.api_url)
        try:
            with pytest.raises(ForgeNotFound) as caught:
                await forge.find_open_pull_request(BRANCH)
        finally:
            await forge.aclose()
    assert not caught.value.retryable
    assert GITHUB_REPO in caught.value.message
    assert caught.value.fields["repo"] == GITHUB_REPO


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_a_timeout_is_retryable(silent_port: int) -> None:
    forge = _forge(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    try:
        with pytest.raises(ForgeUnavailable) as caught:
            await forge.find_open_pull_request(BRANCH)
    finally:
        await forge.aclose()
    assert caught.value.retryable
    assert "Timeout" in caught.value.message


async def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    forge = _forge(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ForgeUnavailable):
            await forge.find_open_pull_request(BRANCH)
    finally:
        await forge.aclose()


async def test_github_enterprise_serves_the_api_under_api_v3() -> None:
    with FakeGitHub(token=GITHUB_TOKEN, base_path="/api/v3") as github:
        forge = _forge(github.api_url)
        try:
            await _open(forge)
        finally:
            await forge.aclose()
        assert github.requests[-1].path == f"/api/v3/repos/{GITHUB_REPO}/pulls"
    assert github_api_base("github.com") == "https://api.github.com"
    assert github_api_base("ghe.example.com") == "https://ghe.example.com/api/v3"


# --- CI -----------------------------------------------------------------------------------------------


async def test_trigger_ci_dispatches_the_workflow_on_the_branch(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    where = await github_forge.trigger_ci(ref=BRANCH)

    request = github.requests[-1]
    assert (request.method, request.path) == (
        "POST",
        f"/repos/{GITHUB_REPO}/actions/workflows/ci.yml/dispatches",
    )
    assert request.json() == {"ref": BRANCH}
    assert github.dispatches == [Dispatch(GITHUB_REPO, "ci.yml", BRANCH, {})]
    assert where == f"https://github.com/{GITHUB_REPO}/actions/workflows/ci.yml"


async def test_trigger_ci_of_a_workflow_the_repository_lacks_is_not_found(github_forge: GitHubForge) -> None:
    with pytest.raises(ForgeNotFound):
        await github_forge.trigger_ci(ref=BRANCH, workflow="deploy.yml")


async def test_ci_status_without_any_ci_is_none(github: FakeGitHub, github_forge: GitHubForge) -> None:
    status = await github_forge.ci_status(SHA)
    assert status == CiStatus(state="none", raw_state="none", url="", head_sha=SHA)
    assert [r.path for r in github.requests] == [
        f"/repos/{GITHUB_REPO}/commits/{SHA}/status",
        f"/repos/{GITHUB_REPO}/commits/{SHA}/check-runs",
    ]


@pytest.mark.parametrize(
    ("outcome", "expected"), [("success", "success"), ("failure", "failure"), ("running", "running")]
)
async def test_ci_status_follows_the_check_runs(
    github: FakeGitHub, github_forge: GitHubForge, outcome: str, expected: str
) -> None:
    run = github.set_ci(GITHUB_REPO, SHA, state=outcome, passing_jobs=["lint"])  # type: ignore[arg-type]

    status = await github_forge.ci_status(SHA)

    assert status.state == expected
    assert status.head_sha == SHA
    assert status.url.startswith(f"{github.url}/{GITHUB_REPO}/actions/runs/{run.id}/job/")


async def test_a_failed_commit_status_wins_over_green_checks(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    github.set_ci(GITHUB_REPO, SHA, state="success")
    github.add_status(
        GITHUB_REPO, SHA, state="error", context="ci/jenkins", target_url="https://ci.example/1"
    )

    status = await github_forge.ci_status(SHA)

    assert (status.state, status.raw_state, status.url) == ("failure", "error", "https://ci.example/1")


async def test_a_pending_commit_status_keeps_the_commit_running(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    github.add_status(GITHUB_REPO, SHA, state="pending")
    github.add_status(GITHUB_REPO, SHA, state="success", context="ci/other")

    assert (await github_forge.ci_status(SHA)).state == "running"


async def test_ci_failure_returns_the_failed_job_and_the_end_of_its_log(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    log = "".join(f"2024-01-01T00:00:{i % 60:02d}Z \x1b[31mline {i}\x1b[0m\n" for i in range(200))
    run = github.set_ci(
        GITHUB_REPO, SHA, state="failure", job_name="unit tests", log=log, passing_jobs=["lint"]
    )

    failure = await github_forge.ci_failure(SHA, max_lines=5)

    assert failure is not None
    assert failure.job_name == "unit tests"
    assert failure.run_url == f"{github.url}/{GITHUB_REPO}/actions/runs/{run.id}"
    assert failure.log_excerpt.splitlines() == [
        f"2024-01-01T00:00:{i % 60:02d}Z line {i}" for i in range(195, 200)
    ]
    # The log came through GitHub's redirect, fetched from the signed URL without our token.
    blob = github.requests_to("GET", "/_blobs/job-logs/")
    assert len(blob) == 1
    assert blob[0].header("authorization") is None


async def test_ci_failure_is_none_when_nothing_failed(github: FakeGitHub, github_forge: GitHubForge) -> None:
    github.set_ci(GITHUB_REPO, SHA, state="success")
    assert await github_forge.ci_failure(SHA) is None

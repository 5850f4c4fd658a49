"""The GitLab REST client against the fake GitLab: the requests it sends and how it reads the answers."""

from __future__ import annotations

import pytest
from deksdenflow_fakes.gitlab import FakeGitLab
from deksdenflow_fakes.httpserver import Reply
from deksdenflow_git.forges import (
    CiStatus,
    ForgeAuthError,
    ForgeNotFound,
    ForgeUnavailable,
    GitLabForge,
    parse_repo,
)
from deksdenflow_git.forges.gitlab import draft_title, gitlab_api_base

from tests.forges.conftest import GITLAB_PROJECT, GITLAB_TOKEN

BRANCH = "0007-add-search"
SHA = "b" * 40
ENCODED = "platform%2Fbackend%2Fapi"


def _forge(api_base_url: str, *, token: str = GITLAB_TOKEN) -> GitLabForge:
    repo = parse_repo(f"https://gitlab.example.com/{GITLAB_PROJECT}.git", "gitlab")
    return GitLabForge(repo, token=token, api_base_url=api_base_url, timeout=5.0)


async def _open(forge: GitLabForge) -> None:
    await forge.open_draft_pull_request(branch=BRANCH, base="main", title="WIP: 0007 - add search", body="b")


# --- merge requests -----------------------------------------------------------------------------------


async def test_open_draft_merge_request_sends_what_gitlab_documents(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    pr = await gitlab_forge.open_draft_pull_request(
        branch=BRANCH, base="main", title="WIP: 0007 - add search", body="See .protocols/0007-add-search/"
    )

    lookup, create = gitlab.requests
    assert (lookup.method, lookup.path) == ("GET", f"/api/v4/projects/{ENCODED}/merge_requests")
    assert (lookup.param("source_branch"), lookup.param("state")) == (BRANCH, "opened")
    assert (create.method, create.path) == ("POST", f"/api/v4/projects/{ENCODED}/merge_requests")
    assert create.header("private-token") == GITLAB_TOKEN
    assert create.header("authorization") is None
    # GitLab has no "draft" attribute on create: the title prefix is what makes a draft.
    assert create.json() == {
        "source_branch": BRANCH,
        "target_branch": "main",
        "title": "Draft: WIP: 0007 - add search",
        "description": "See .protocols/0007-add-search/",
    }
    stored = gitlab.mrs(GITLAB_PROJECT)[0]
    assert stored.draft
    assert pr.number == stored.iid == 1
    assert pr.url == f"{gitlab.url}/{GITLAB_PROJECT}/-/merge_requests/1"
    assert (pr.state, pr.draft, pr.reused, pr.head_branch, pr.head_sha) == (
        "open",
        True,
        False,
        BRANCH,
        stored.sha,
    )


def test_a_title_already_marked_as_draft_is_kept() -> None:
    assert draft_title("Draft: x") == "Draft: x"
    assert draft_title("[Draft] x") == "[Draft] x"
    assert draft_title("Drafting x") == "Draft: Drafting x"


async def test_an_open_merge_request_for_the_branch_is_reused_without_creating_one(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    existing = gitlab.add_mr(GITLAB_PROJECT, source_branch=BRANCH, title="Ready")

    pr = await gitlab_forge.open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert (pr.number, pr.reused, pr.draft) == (existing.iid, True, False)
    assert gitlab.requests_to("POST", "/") == []


async def test_conflict_on_create_reuses_the_merge_request_another_worker_opened(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    other = gitlab.add_mr(GITLAB_PROJECT, source_branch=BRANCH)
    gitlab.fail_next(Reply.json(200, []))  # our lookup ran before the other MR existed

    pr = await gitlab_forge.open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in gitlab.requests] == [
        ("GET", "merge_requests"),
        ("POST", "merge_requests"),
        ("GET", "merge_requests"),
    ]
    assert (pr.number, pr.reused) == (other.iid, True)
    assert len(gitlab.mrs(GITLAB_PROJECT)) == 1


async def test_get_merge_request_reports_open_merged_and_closed(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    merged = gitlab.add_mr(GITLAB_PROJECT, source_branch="0001-a")
    closed = gitlab.add_mr(GITLAB_PROJECT, source_branch="0002-b")
    still_open = gitlab.add_mr(GITLAB_PROJECT, source_branch="0003-c")
    gitlab.merge(GITLAB_PROJECT, merged.iid)
    gitlab.close(GITLAB_PROJECT, closed.iid)

    assert (await gitlab_forge.get_pull_request(merged.iid)).state == "merged"
    assert (await gitlab_forge.get_pull_request(closed.iid)).state == "closed"
    assert (await gitlab_forge.get_pull_request(still_open.iid)).state == "open"
    assert gitlab.requests[-1].path == f"/api/v4/projects/{ENCODED}/merge_requests/{still_open.iid}"


async def test_a_self_hosted_instance_under_a_sub_path_works() -> None:
    with FakeGitLab(token=GITLAB_TOKEN, base_path="/gitlab") as gitlab:
        forge = _forge(gitlab.base_url)
        try:
            await _open(forge)
            pr = await forge.get_pull_request(1)
        finally:
            await forge.aclose()
        assert all(r.path.startswith(f"/gitlab/api/v4/projects/{ENCODED}/") for r in gitlab.requests)
        assert pr.url == f"{gitlab.url}/gitlab/{GITLAB_PROJECT}/-/merge_requests/1"


def test_the_api_base_follows_the_repository_host_and_is_never_doubled() -> None:
    repo = parse_repo("git@git.corp.example:team/app.git", "gitlab")
    assert gitlab_api_base(repo, None) == "https://git.corp.example/api/v4"
    assert (
        gitlab_api_base(repo, "https://git.corp.example/gitlab/") == "https://git.corp.example/gitlab/api/v4"
    )
    assert gitlab_api_base(repo, "https://git.corp.example/api/v4") == "https://git.corp.example/api/v4"


# --- errors -------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_a_non_retryable_error_naming_the_token_but_not_showing_it(
    gitlab: FakeGitLab,
) -> None:
    forge = _forge(gitlab.base_url, token="glpat-wrongWrongWrong")
    try:
        with pytest.raises(ForgeAuthError) as caught:
            await _open(forge)
    finally:
        await forge.aclose()
    error = caught.value
    assert not error.retryable
    assert "check the token named GITLAB_TOKEN" in error.message
    assert "401 Unauthorized" in error.message
    shown = f"{error} {error.to_dict()}"
    assert "glpat-wrongWrongWrong" not in shown
    assert GITLAB_TOKEN not in shown


async def test_server_errors_are_retryable(gitlab: FakeGitLab, gitlab_forge: GitLabForge) -> None:
    gitlab.fail_next(Reply.json(503, {"message": "503 Service Unavailable"}))
    with pytest.raises(ForgeUnavailable) as caught:
        await gitlab_forge.trigger_ci(ref=BRANCH)
    assert caught.value.retryable
    assert gitlab.pipelines(GITLAB_PROJECT) == []


async def test_too_many_requests_is_retryable(gitlab: FakeGitLab, gitlab_forge: GitLabForge) -> None:
    gitlab.fail_next(Reply.json(429, {"message": "Retry later"}, headers={"retry-after": "1"}))
    with pytest.raises(ForgeUnavailable):
        await gitlab_forge.find_open_pull_request(BRANCH)


async def test_an_unknown_project_is_a_non_retryable_error_naming_it() -> None:
    with FakeGitLab(token=GITLAB_TOKEN, projects=["platform/other"]) as gitlab:
        forge = _forge(gitlab.base_url)
        try:
            with pytest.raises(ForgeNotFound) as caught:
                await _open(forge)
        finally:
            await forge.aclose()
    assert not caught.value.retryable
    assert GITLAB_PROJECT in caught.value.message
    assert "404 Project Not Found" in caught.value.message


# --- CI -----------------------------------------------------------------------------------------------


async def test_trigger_ci_creates_a_pipeline_for_the_ref(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    where = await gitlab_forge.trigger_ci(ref=BRANCH)

    request = gitlab.requests[-1]
    assert (request.method, request.path) == ("POST", f"/api/v4/projects/{ENCODED}/pipeline")
    assert request.param("ref") == BRANCH
    (pipeline,) = gitlab.pipelines(GITLAB_PROJECT)
    assert (pipeline.ref, pipeline.source) == (BRANCH, "api")
    assert where == f"{gitlab.url}/{GITLAB_PROJECT}/-/pipelines/{pipeline.id}"


async def test_ci_status_without_a_pipeline_is_none(gitlab: FakeGitLab, gitlab_forge: GitLabForge) -> None:
    assert await gitlab_forge.ci_status(SHA) == CiStatus(state="none", raw_state="none", url="", head_sha=SHA)
    assert gitlab.requests[-1].param("sha") == SHA


@pytest.mark.parametrize(
    ("outcome", "raw", "expected"),
    [
        ("success", None, "success"),
        ("failure", None, "failure"),
        ("running", None, "running"),
        ("running", "manual", "running"),
        ("failure", "canceled", "failure"),
        ("success", "skipped", "none"),
    ],
)
async def test_ci_status_follows_the_newest_pipeline(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge, outcome: str, raw: str | None, expected: str
) -> None:
    gitlab.set_ci(GITLAB_PROJECT, SHA, state="failure")  # an older pipeline of the same commit
    newest = gitlab.set_ci(GITLAB_PROJECT, SHA, state=outcome, raw_status=raw)  # type: ignore[arg-type]

    status = await gitlab_forge.ci_status(SHA)

    assert (status.state, status.raw_state) == (expected, newest.status)
    assert status.url == f"{gitlab.url}/{GITLAB_PROJECT}/-/pipelines/{newest.id}"


async def test_ci_failure_returns_the_failed_job_and_the_clean_end_of_its_trace(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    trace = (
        "section_start:1700000000:prepare_script\r\x1b[0K\x1b[36;1mPreparing\x1b[0;m\n"
        "section_end:1700000001:prepare_script\r\x1b[0K"
        + "".join(f"test {i} ok\n" for i in range(50))
        + "\x1b[31;1mFAILED tests/test_search.py::test_empty_query\x1b[0;m\n"
        + "section_start:1700000002:cleanup\r\x1b[0KERROR: Job failed: exit code 1\n"
    )
    pipeline = gitlab.set_ci(
        GITLAB_PROJECT, SHA, state="failure", job_name="pytest", log=trace, passing_jobs=["lint"]
    )

    failure = await gitlab_forge.ci_failure(SHA, max_lines=3)

    assert failure is not None
    assert failure.job_name == "pytest"
    assert failure.run_url == f"{gitlab.url}/{GITLAB_PROJECT}/-/pipelines/{pipeline.id}"
    assert failure.log_excerpt.splitlines() == [
        "test 49 ok",
        "FAILED tests/test_search.py::test_empty_query",
        "ERROR: Job failed: exit code 1",
    ]
    jobs_request = gitlab.requests_to("GET", f"/api/v4/projects/{ENCODED}/pipelines/{pipeline.id}/jobs")[0]
    assert jobs_request.query["scope[]"] == ["failed"]


async def test_ci_failure_is_none_when_no_pipeline_failed(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    gitlab.set_ci(GITLAB_PROJECT, SHA, state="success")
    assert await gitlab_forge.ci_failure(SHA) is None


async def test_ci_failure_of_a_canceled_pipeline_names_it_without_a_job(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    gitlab.set_ci(GITLAB_PROJECT, SHA, state="failure", job_name="old", log="old failure\n")
    canceled = gitlab.set_ci(GITLAB_PROJECT, SHA, state="failure", raw_status="canceled")

    failure = await gitlab_forge.ci_failure(SHA)

    assert failure is not None
    assert (failure.run_url, failure.job_name, failure.log_excerpt) == (
        f"{gitlab.url}/{GITLAB_PROJECT}/-/pipelines/{canceled.id}",
        "",
        "",
    )

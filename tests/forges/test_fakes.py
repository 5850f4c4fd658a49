"""The fake GitHub and GitLab refuse what the real ones refuse, so clients cannot pass tests by accident."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_fakes.gitlab import FakeGitLab

from tests.forges.conftest import GITHUB_REPO, GITHUB_TOKEN, GITLAB_TOKEN

GITHUB_HEADERS = {
    "Authorization": f"Bearer {GITHUB_TOKEN}",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}
PULL = {"title": "t", "head": "0001-x", "base": "main", "body": "b", "draft": True}


def _github(
    fake: FakeGitHub, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    merged = {**GITHUB_HEADERS, **(headers or {})}
    return httpx.request(method, f"{fake.api_url}{path}", headers=merged, follow_redirects=False, **kw)


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"User-Agent": ""}, 403, "User-Agent"),
        ({"Authorization": ""}, 401, "Requires authentication"),
        ({"Authorization": "Bearer nope"}, 401, "Bad credentials"),
        ({"Accept": "application/json"}, 415, "Accept"),
        ({"X-GitHub-Api-Version": "2020-01-01"}, 400, "is not supported"),
    ],
)
def test_github_checks_agent_credentials_and_media_headers(
    github: FakeGitHub, headers: dict[str, str], status: int, message: str
) -> None:
    sent = {k: v for k, v in {**GITHUB_HEADERS, **headers}.items() if v or k == "User-Agent"}
    response = httpx.get(f"{github.api_url}/repos/{GITHUB_REPO}/pulls", headers=sent)
    assert response.status_code == status
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**PULL, "labels": ["x"]}, '"labels" is not a permitted key.'),
        ({k: v for k, v in PULL.items() if k != "head"}, '"head" wasn\'t supplied.'),
        ({k: v for k, v in PULL.items() if k != "title"}, '"title" wasn\'t supplied.'),
        ({**PULL, "draft": "yes"}, "is not a boolean"),
    ],
)
def test_github_validates_the_create_pull_request_body(
    github: FakeGitHub, body: dict[str, Any], message: str
) -> None:
    response = _github(github, "POST", f"/repos/{GITHUB_REPO}/pulls", json=body)
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert github.prs(GITHUB_REPO) == []


def test_github_answers_422_when_the_pull_request_exists(github: FakeGitHub) -> None:
    assert _github(github, "POST", f"/repos/{GITHUB_REPO}/pulls", json=PULL).status_code == 201
    again = _github(github, "POST", f"/repos/{GITHUB_REPO}/pulls", json=PULL)
    assert again.status_code == 422
    assert again.json()["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for acme:0001-x.",
        }
    ]


def test_github_ignores_a_head_filter_without_its_owner(github: FakeGitHub) -> None:
    github.add_pull(GITHUB_REPO, head="0001-x")
    github.add_pull(GITHUB_REPO, head="0002-y")
    listed = _github(github, "GET", f"/repos/{GITHUB_REPO}/pulls", params={"head": "0001-x"}).json()
    scoped = _github(github, "GET", f"/repos/{GITHUB_REPO}/pulls", params={"head": "acme:0001-x"}).json()
    assert len(listed) == 2
    assert [p["head"]["ref"] for p in scoped] == ["0001-x"]


def test_github_unknown_paths_and_methods_are_404(github: FakeGitHub) -> None:
    assert _github(github, "DELETE", f"/repos/{GITHUB_REPO}/pulls").status_code == 404
    assert _github(github, "GET", f"/repos/{GITHUB_REPO}/pull").status_code == 404
    assert _github(github, "GET", "/user/repos").status_code == 404


def test_github_job_logs_redirect_to_a_signed_url_that_refuses_credentials(github: FakeGitHub) -> None:
    run = github.set_ci(GITHUB_REPO, "d" * 40, state="failure", log="boom\n")
    logs = _github(github, "GET", f"/repos/{GITHUB_REPO}/actions/jobs/{run.jobs[0].id}/logs")
    assert logs.status_code == 302
    location = logs.headers["location"]
    assert httpx.get(location, headers={"Authorization": f"Bearer {GITHUB_TOKEN}"}).status_code == 400
    assert httpx.get(location.split("?")[0]).status_code == 403
    assert httpx.get(location).text == "boom\n"


def _mark_ready(node: str) -> dict[str, str]:
    """The mutation with the pull request's id written inline, not as a variable."""
    return {
        "query": "mutation { markPullRequestReadyForReview(input: "
        f'{{pullRequestId: "{node}"}}) {{ pullRequest {{ isDraft number }} }} }}'
    }


def test_github_graphql_checks_credentials_and_resolves_only_its_own_node_ids(github: FakeGitHub) -> None:
    number = github.add_pull(GITHUB_REPO, head="0001-x").number
    url = f"{github.url}/graphql"

    anonymous = httpx.post(url, json=_mark_ready("x"), headers={"User-Agent": "t"})
    unknown = httpx.post(url, json=_mark_ready("PR_nope"), headers=GITHUB_HEADERS)
    done = httpx.post(url, json=_mark_ready(github.node_id(GITHUB_REPO, number)), headers=GITHUB_HEADERS)

    assert (anonymous.status_code, anonymous.json()["message"]) == (401, "Requires authentication")
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["type"] == "NOT_FOUND"
    ready = done.json()["data"]["markPullRequestReadyForReview"]["pullRequest"]
    assert ready == {"number": number, "isDraft": False}  # the fields asked for, no more
    assert github.pull(GITHUB_REPO, number).draft is False
    assert httpx.get(url, headers=GITHUB_HEADERS).status_code == 404


def test_github_merge_validates_the_method(github: FakeGitHub) -> None:
    number = github.add_pull(GITHUB_REPO, head="0001-x", draft=False).number
    response = _github(
        github, "PUT", f"/repos/{GITHUB_REPO}/pulls/{number}/merge", json={"merge_method": "ff"}
    )
    assert response.status_code == 422
    assert "merge_method" in response.json()["message"]
    assert not github.pull(GITHUB_REPO, number).merged


def _gitlab(
    fake: FakeGitLab, method: str, path: str, *, token: str = GITLAB_TOKEN, **kw: Any
) -> httpx.Response:
    return httpx.request(method, f"{fake.api_url}{path}", headers={"PRIVATE-TOKEN": token}, **kw)


MR = {"source_branch": "0001-x", "target_branch": "main", "title": "Draft: t"}


def test_gitlab_checks_the_token(gitlab: FakeGitLab) -> None:
    wrong = _gitlab(gitlab, "GET", "/projects/a%2Fb/merge_requests", token="nope")
    assert (wrong.status_code, wrong.json()) == (401, {"message": "401 Unauthorized"})
    bearer = httpx.get(
        f"{gitlab.api_url}/projects/a%2Fb/merge_requests", headers={"Authorization": f"Bearer {GITLAB_TOKEN}"}
    )
    assert bearer.status_code == 200


def test_gitlab_needs_the_project_path_url_encoded(gitlab: FakeGitLab) -> None:
    assert _gitlab(gitlab, "POST", "/projects/a/b/merge_requests", json=MR).status_code == 404
    assert _gitlab(gitlab, "POST", "/projects/a%2Fb/merge_requests", json=MR).status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**MR, "draft": True}, "draft is not a parameter"),
        ({k: v for k, v in MR.items() if k != "title"}, "title is missing"),
        ({}, "source_branch is missing, target_branch is missing, title is missing"),
    ],
)
def test_gitlab_validates_the_create_merge_request_parameters(
    gitlab: FakeGitLab, body: dict[str, Any], error: str
) -> None:
    response = _gitlab(gitlab, "POST", "/projects/a%2Fb/merge_requests", json=body)
    assert response.status_code == 400
    assert error in response.json()["error"]


def test_gitlab_answers_409_for_a_second_open_merge_request_and_marks_drafts_by_title(
    gitlab: FakeGitLab,
) -> None:
    created = _gitlab(gitlab, "POST", "/projects/a%2Fb/merge_requests", json=MR).json()
    again = _gitlab(gitlab, "POST", "/projects/a%2Fb/merge_requests", json=MR)
    assert (created["draft"], created["state"]) == (True, "opened")
    assert again.status_code == 409
    assert again.json() == {
        "message": ["Another open merge request already exists for this source branch: !1"]
    }
    plain = _gitlab(
        gitlab, "POST", "/projects/a%2Fb/merge_requests", json={**MR, "source_branch": "2", "title": "t"}
    )
    assert plain.json()["draft"] is False


def test_gitlab_pipeline_needs_a_ref_and_unknown_routes_are_404(gitlab: FakeGitLab) -> None:
    missing = _gitlab(gitlab, "POST", "/projects/a%2Fb/pipeline")
    assert (missing.status_code, missing.json()) == (400, {"error": "ref is missing"})
    assert _gitlab(gitlab, "GET", "/projects/a%2Fb/pipeline").status_code == 404
    assert _gitlab(gitlab, "GET", "/projects").status_code == 404


def test_gitlab_merge_when_pipeline_succeeds_needs_a_pipeline_to_wait_for(gitlab: FakeGitLab) -> None:
    mr = gitlab.add_mr("a/b", source_branch="0001-x", title="t")
    wait = {"merge_when_pipeline_succeeds": True}
    assert (
        _gitlab(gitlab, "PUT", f"/projects/a%2Fb/merge_requests/{mr.iid}/merge", json=wait).status_code == 405
    )
    gitlab.set_ci("a/b", mr.sha, state="running")
    scheduled = _gitlab(gitlab, "PUT", f"/projects/a%2Fb/merge_requests/{mr.iid}/merge", json=wait).json()
    assert (scheduled["state"], scheduled["merge_when_pipeline_succeeds"]) == ("opened", True)


def test_gitlab_update_needs_a_parameter_and_known_reviewers(gitlab: FakeGitLab) -> None:
    mr = gitlab.add_mr("a/b", source_branch="0001-x")
    path = f"/projects/a%2Fb/merge_requests/{mr.iid}"
    nothing = _gitlab(gitlab, "PUT", path, json={})
    stranger = _gitlab(gitlab, "PUT", path, json={"reviewer_ids": [424242]})
    assert (nothing.status_code, stranger.status_code) == (400, 400)
    assert "at least one parameter" in nothing.json()["error"]
    assert "424242" in stranger.json()["error"]
    alice = gitlab.add_user("alice")
    assert _gitlab(gitlab, "GET", "/users", params={"username": "ALICE"}).json()[0]["id"] == alice
    assert _gitlab(gitlab, "GET", "/users", params={"username": "nobody"}).json() == []

"""The GitHub REST client's review and merge calls against the fake GitHub: ready, reviewers, body,
comments, merge and reviews."""

from __future__ import annotations

import httpx
import pytest
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_fakes.httpserver import Reply
from deksdenflow_git.forges import (
    Comment,
    ForgeAuthError,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    GitHubForge,
    LineComment,
    MergeResult,
    Reviews,
    parse_repo,
)
from deksdenflow_git.forges.github import graphql_data

from tests.forges.conftest import GITHUB_REPO, GITHUB_TOKEN

BRANCH = "0007-add-search"
HEAD = "e" * 40
PULLS = f"/repos/{GITHUB_REPO}/pulls"


async def _read(github: FakeGitHub, number: int) -> dict[str, object]:
    headers = {
        "Authorization": f"Bearer {GITHUB_TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    async with httpx.AsyncClient(headers=headers) as client:
        return dict((await client.get(f"{github.api_url}{PULLS}/{number}")).json())


def _ready_pull(github: FakeGitHub) -> int:
    """An open, non-draft PR whose head is ``HEAD``."""
    github.set_branch(GITHUB_REPO, BRANCH, HEAD)
    return github.add_pull(GITHUB_REPO, head=BRANCH, draft=False).number


# --- ready for review ---------------------------------------------------------------------------------


async def test_mark_ready_undrafts_through_the_graphql_mutation_with_the_pull_requests_node_id(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = github.add_pull(GITHUB_REPO, head=BRANCH).number

    pr = await github_forge.mark_ready(number)

    assert (pr.number, pr.draft, pr.state) == (number, False, "open")
    assert github.pull(GITHUB_REPO, number).draft is False
    read, mutation = github.requests
    assert (read.method, read.path) == ("GET", f"{PULLS}/{number}")
    assert (mutation.method, mutation.path) == ("POST", "/graphql")
    assert mutation.header("authorization") == f"Bearer {GITHUB_TOKEN}"
    sent = mutation.json()
    assert "markPullRequestReadyForReview" in sent["query"]
    assert sent["variables"] == {"id": github.node_id(GITHUB_REPO, number)}


async def test_mark_ready_twice_or_on_a_ready_pull_request_sends_no_mutation(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = github.add_pull(GITHUB_REPO, head=BRANCH).number
    await github_forge.mark_ready(number)

    again = await github_forge.mark_ready(number)

    assert again.draft is False
    assert len(github.requests_to("POST", "/graphql")) == 1


async def test_mark_ready_on_github_enterprise_posts_to_api_graphql() -> None:
    with FakeGitHub(token=GITHUB_TOKEN, base_path="/api/v3") as github:
        number = github.add_pull(GITHUB_REPO, head=BRANCH).number
        repo = parse_repo(f"https://ghe.example.com/{GITHUB_REPO}.git", "github")
        forge = GitHubForge(repo, token=GITHUB_TOKEN, api_base_url=github.api_url)
        try:
            assert (await forge.mark_ready(number)).draft is False
        finally:
            await forge.aclose()
        assert [r.path for r in github.requests] == [f"/api/v3{PULLS}/{number}", "/api/graphql"]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("NOT_FOUND", ForgeNotFound),
        ("FORBIDDEN", ForgeAuthError),
        ("RATE_LIMITED", ForgeUnavailable),
        (None, ForgeError),
    ],
)
def test_graphql_errors_answered_with_200_are_raised_as_forge_errors(
    kind: str | None, error: type[Exception]
) -> None:
    repo = parse_repo(f"https://github.com/{GITHUB_REPO}.git", "github")
    payload = {"data": None, "errors": [{"type": kind, "message": "nope"}]}
    with pytest.raises(error) as caught:
        graphql_data(payload, repo=repo, token_name="GITHUB_TOKEN", scrub=str)
    assert type(caught.value) is error
    assert "nope" in str(caught.value)


# --- reviewers, body, comments ------------------------------------------------------------------------


async def test_request_reviewers_adds_them_to_the_pull_requests_requested_reviewers(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)

    await github_forge.request_reviewers(number, ["alice", "bob"])
    await github_forge.request_reviewers(number, ["carol"])
    await github_forge.request_reviewers(number, [])

    assert github.pull(GITHUB_REPO, number).requested_reviewers == ["alice", "bob", "carol"]
    first, second = github.requests_to("POST", f"{PULLS}/{number}/requested_reviewers")
    assert first.json() == {"reviewers": ["alice", "bob"]}
    assert second.json() == {"reviewers": ["carol"]}


async def test_asking_someone_who_is_no_collaborator_is_refused_with_githubs_reason(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    github.set_collaborators(GITHUB_REPO, ["alice"])

    with pytest.raises(ForgeError) as caught:
        await github_forge.request_reviewers(number, ["alice", "mallory"])

    assert not caught.value.retryable
    assert "422" in caught.value.message
    assert "not a collaborator" in caught.value.message
    assert github.pull(GITHUB_REPO, number).requested_reviewers == []


async def test_update_pull_request_body_replaces_the_body(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)

    await github_forge.update_pull_request_body(number, "## Status\n- [x] step 1")

    assert github.pull(GITHUB_REPO, number).body == "## Status\n- [x] step 1"
    (patch,) = github.requests_to("PATCH", f"{PULLS}/{number}")
    assert patch.json() == {"body": "## Status\n- [x] step 1"}


async def test_comment_posts_an_issue_comment_and_returns_its_web_url(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)

    url = await github_forge.comment(number, "Fixed in e0e0e0e.")

    (comment,) = github.pull(GITHUB_REPO, number).comments
    assert comment.body == "Fixed in e0e0e0e."
    assert url == f"{github.url}/{GITHUB_REPO}/pull/{number}#issuecomment-{comment.id}"
    assert github.requests[-1].path == f"/repos/{GITHUB_REPO}/issues/{number}/comments"


async def test_comment_on_a_missing_pull_request_is_not_found(github_forge: GitHubForge) -> None:
    with pytest.raises(ForgeNotFound):
        await github_forge.comment(99, "hello")


async def test_comments_lists_the_conversation_over_every_page(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    written = [github.add_comment(GITHUB_REPO, number, "ann", f"comment {i}") for i in range(102)]
    posted = await github_forge.comment(number, "ours")

    comments = await github_forge.comments(number)

    assert [c.body for c in comments] == [*(f"comment {i}" for i in range(102)), "ours"]
    assert comments[0] == Comment(
        "comment 0", f"{github.url}/{GITHUB_REPO}/pull/{number}#issuecomment-{written[0].id}"
    )
    assert comments[-1].url == posted
    pages = github.requests_to("GET", f"/repos/{GITHUB_REPO}/issues/{number}/comments")
    assert [r.param("page") for r in pages] == ["1", "2"]


async def test_review_comments_are_the_line_comments_of_that_review_only(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    review = github.add_review(
        GITHUB_REPO,
        number,
        "ann",
        "CHANGES_REQUESTED",
        body="two things",
        comments=[("app/search.py", 3, "name it `query`"), ("README.md", 1, "say how to search")],
    )
    github.add_review(GITHUB_REPO, number, "bob", "COMMENTED", comments=[("app/search.py", 9, "nit")])

    found = await github_forge.review_comments(number, str(review.id))

    first, second = review.comments
    assert found == [
        LineComment(
            "app/search.py",
            3,
            "name it `query`",
            f"{github.url}/{GITHUB_REPO}/pull/{number}#discussion_r{first.id}",
        ),
        LineComment(
            "README.md",
            1,
            "say how to search",
            f"{github.url}/{GITHUB_REPO}/pull/{number}#discussion_r{second.id}",
        ),
    ]
    with pytest.raises(ForgeNotFound):
        await github_forge.review_comments(number, "404")


# --- merge --------------------------------------------------------------------------------------------


async def test_merge_sends_the_method_and_the_expected_head_and_returns_the_merge_commit(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)

    result = await github_forge.merge(number, method="squash", sha=HEAD)

    stored = github.pull(GITHUB_REPO, number)
    assert (stored.merged, stored.merge_method) == (True, "squash")
    assert stored.merge_commit_sha
    assert result == MergeResult(
        merged=True,
        scheduled=False,
        merge_commit_sha=stored.merge_commit_sha,
        url=f"{github.url}/{GITHUB_REPO}/pull/{number}",
    )
    (put,) = github.requests_to("PUT", f"{PULLS}/{number}/merge")
    assert put.json() == {"merge_method": "squash", "sha": HEAD}
    assert (await github_forge.get_pull_request(number)).state == "merged"


async def test_merging_a_merged_pull_request_again_reports_the_same_merge_without_asking(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    first = await github_forge.merge(number, method="merge", sha=HEAD)

    again = await github_forge.merge(number, method="merge", sha=HEAD)

    assert again == first
    assert len(github.requests_to("PUT", "/")) == 1


async def test_a_merge_that_lost_a_race_with_another_merge_reports_that_merge(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    before = await _read(github, number)  # what our first read will see: still open
    github.merge(GITHUB_REPO, number)  # someone merges on the web page in between
    github.fail_next(Reply.json(200, before))

    result = await github_forge.merge(number, method="merge", sha=HEAD)

    assert result.merged
    assert result.merge_commit_sha == github.pull(GITHUB_REPO, number).merge_commit_sha
    assert [r.method for r in github.requests[-3:]] == ["GET", "PUT", "GET"]


@pytest.mark.parametrize(
    ("arrange", "status", "reason"),
    [
        ("draft", "405", "Pull Request is still a draft"),
        ("moved", "409", "Head branch was modified"),
        ("squash only", "405", "Merge commits are not allowed on this repository"),
        ("conflicts", "405", "Pull Request is not mergeable"),
    ],
)
async def test_a_refused_merge_is_a_non_retryable_error_with_githubs_reason(
    github: FakeGitHub, github_forge: GitHubForge, arrange: str, status: str, reason: str
) -> None:
    if arrange == "squash only":
        github.add_repo(GITHUB_REPO, merge_methods=["squash"])
    number = _ready_pull(github)
    pull = github.pull(GITHUB_REPO, number)
    pull.draft = arrange == "draft"
    pull.mergeable = arrange != "conflicts"
    sha = "f" * 40 if arrange == "moved" else HEAD

    with pytest.raises(ForgeError) as caught:
        await github_forge.merge(number, method="merge", sha=sha)

    assert not caught.value.retryable
    assert status in caught.value.message
    assert reason in caught.value.message
    assert not github.pull(GITHUB_REPO, number).merged


async def test_merging_a_closed_pull_request_is_an_error(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    github.close(GITHUB_REPO, number)

    with pytest.raises(ForgeError, match="closed without being merged"):
        await github_forge.merge(number, method="merge", sha=HEAD)
    assert github.requests_to("PUT", "/") == []


async def test_merge_when_the_pipeline_succeeds_merges_only_on_green_ci_since_github_cannot_schedule(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    github.set_ci(GITHUB_REPO, HEAD, state="running", branch=BRANCH)

    waiting = await github_forge.merge(number, method="rebase", sha=HEAD, when_pipeline_succeeds=True)

    assert (waiting.merged, waiting.scheduled) == (False, False)
    assert github.requests_to("PUT", "/") == []
    fixed = "1" * 40  # a new push, whose CI passes
    github.set_branch(GITHUB_REPO, BRANCH, fixed)
    github.set_ci(GITHUB_REPO, fixed, state="success", branch=BRANCH)

    merged = await github_forge.merge(number, method="rebase", sha=fixed, when_pipeline_succeeds=True)

    assert merged.merged
    assert github.pull(GITHUB_REPO, number).merge_method == "rebase"


# --- reviews ------------------------------------------------------------------------------------------


async def test_reviews_count_each_users_latest_approval_or_change_request(
    github: FakeGitHub, github_forge: GitHubForge
) -> None:
    number = _ready_pull(github)
    github.add_review(GITHUB_REPO, number, "alice", "CHANGES_REQUESTED")
    github.add_review(GITHUB_REPO, number, "alice", "APPROVED")  # replaces her change request
    github.add_review(GITHUB_REPO, number, "bob", "APPROVED")
    github.add_review(GITHUB_REPO, number, "bob", "COMMENTED")  # a comment keeps his approval
    github.add_review(GITHUB_REPO, number, "carol", "CHANGES_REQUESTED")
    github.add_review(GITHUB_REPO, number, "dave", "APPROVED")
    github.dismiss_review(GITHUB_REPO, number, "dave")  # a dismissal clears it
    github.add_review(GITHUB_REPO, number, "erin", "COMMENTED")

    reviews = await github_forge.reviews(number)

    assert reviews == Reviews(
        approved_by=("alice", "bob"), changes_requested_by=("carol",), approvals_required=0
    )


async def test_reviews_read_every_page(github: FakeGitHub, github_forge: GitHubForge) -> None:
    number = _ready_pull(github)
    github.add_review(GITHUB_REPO, number, "alice", "APPROVED")
    for _ in range(100):
        github.add_review(GITHUB_REPO, number, "bob", "COMMENTED")
    github.add_review(GITHUB_REPO, number, "alice", "CHANGES_REQUESTED")  # on the second page

    reviews = await github_forge.reviews(number)

    assert (reviews.approved_by, reviews.changes_requested_by) == ((), ("alice",))
    pages = github.requests_to("GET", f"{PULLS}/{number}/reviews")
    assert [(r.param("per_page"), r.param("page")) for r in pages] == [("100", "1"), ("100", "2")]

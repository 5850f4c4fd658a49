"""The gh/glab fallback's review and merge calls: the ``gh api``/``glab api`` requests they run (bodies as
JSON on stdin) and how they read the answers, with the fake CLIs of conftest.py first on PATH."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deksdenflow_git.forges import (
    Comment,
    ForgeError,
    ForgeNotFound,
    GhCli,
    GlabCli,
    LineComment,
    MergeResult,
    Reviews,
    parse_repo,
)
from deksdenflow_git.forges.github import MARK_READY_MUTATION

from tests.forges.conftest import FakeCli

SHA = "c" * 40
PULL = "repos/acme/widgets/pulls/7"
MR = "projects/platform%2Fapi/merge_requests/4"
JSON_BODY = ["--header", "Content-Type: application/json", "--input", "-"]
# Quotes, $(...), a leading @ and newlines reach the API untouched: the body is JSON on stdin.
BODY = '@notafile See `.protocols/0007`; $(rm -rf ~) "quoted"\nsecond line'


def _gh() -> GhCli:
    return GhCli(parse_repo("https://github.com/acme/widgets.git", "github"), timeout=20)


def _glab() -> GlabCli:
    return GlabCli(parse_repo("git@gitlab.example.com:platform/api.git", "gitlab"), timeout=20)


def _pull(*, draft: bool = False, merged: bool = False, state: str = "open") -> str:
    return json.dumps(
        {
            "number": 7,
            "node_id": "PR_kwDOAbc",
            "html_url": "https://github.com/acme/widgets/pull/7",
            "state": "closed" if merged else state,
            "draft": draft,
            "merged": merged,
            "merge_commit_sha": "9" * 40 if merged else None,
            "head": {"ref": "0007-add-search", "sha": SHA},
        }
    )


def _mr(**changes: Any) -> str:
    data = {
        "iid": 4,
        "title": "Draft: Add search",
        "web_url": "https://gitlab.example.com/platform/api/-/merge_requests/4",
        "state": "opened",
        "source_branch": "0007-add-search",
        "sha": SHA,
        "draft": True,
        "reviewers": [{"id": 11, "username": "carol"}],
        "merge_when_pipeline_succeeds": False,
        "detailed_merge_status": "draft_status",
    }
    return json.dumps({**data, **changes})


# --- gh -----------------------------------------------------------------------------------------------


async def test_gh_mark_ready_runs_the_graphql_mutation_with_the_node_id(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": [PULL], "stdout": _pull(draft=True)},
        {"when": ["graphql"], "stdout": '{"data": {"markPullRequestReadyForReview": {"pullRequest": {}}}}'},
    )

    pr = await _gh().mark_ready(7)

    assert (pr.number, pr.draft) == (7, False)
    _read, mutation = fake_cli.calls()
    assert mutation == [
        *["gh", "api", "--hostname", "github.com", "graphql"],
        *["-f", f"query={MARK_READY_MUTATION}", "-f", "id=PR_kwDOAbc"],
    ]


async def test_gh_mark_ready_of_a_ready_pull_request_runs_no_mutation(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": [PULL], "stdout": _pull(draft=False)})

    assert (await _gh().mark_ready(7)).draft is False
    assert len(fake_cli.calls()) == 1


async def test_gh_graphql_errors_are_read_from_the_answer_gh_prints(fake_cli: FakeCli) -> None:
    answer = {"errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a node"}]}
    fake_cli.rules(
        {"when": [PULL], "stdout": _pull(draft=True)},
        {"when": ["graphql"], "rc": 1, "stdout": json.dumps(answer), "stderr": "gh: Could not resolve\n"},
    )

    with pytest.raises(ForgeNotFound, match="Could not resolve to a node"):
        await _gh().mark_ready(7)


async def test_gh_review_requests_body_and_comments_go_through_the_rest_api(fake_cli: FakeCli) -> None:
    comment_url = "https://github.com/acme/widgets/pull/7#issuecomment-5"
    fake_cli.rules(
        {"when": ["repos/acme/widgets/issues/7/comments"], "stdout": json.dumps({"html_url": comment_url})},
        {"when": ["api"], "stdout": "{}"},
    )
    gh = _gh()

    await gh.request_reviewers(7, ["alice", "bob"])
    await gh.update_pull_request_body(7, BODY)
    url = await gh.comment(7, BODY)

    assert url == comment_url
    assert [call[4:] for call in fake_cli.calls()] == [
        ["--method", "POST", *JSON_BODY, f"{PULL}/requested_reviewers"],
        ["--method", "PATCH", *JSON_BODY, PULL],
        ["--method", "POST", *JSON_BODY, "repos/acme/widgets/issues/7/comments"],
    ]
    assert fake_cli.inputs() == [{"reviewers": ["alice", "bob"]}, {"body": BODY}, {"body": BODY}]


async def test_gh_reads_every_page_of_comments_and_a_reviews_line_comments(fake_cli: FakeCli) -> None:
    url = "https://github.com/acme/widgets/pull/7#issuecomment-{}"
    full = [{"body": f"c{i}", "html_url": url.format(i)} for i in range(100)]
    line = {"path": "app.py", "line": None, "original_line": 4, "body": "old line", "html_url": "u"}
    comments = "repos/acme/widgets/issues/7/comments"
    fake_cli.rules(
        {"when": [f"{comments}?per_page=100&page=1"], "stdout": json.dumps(full)},
        {
            "when": [f"{comments}?per_page=100&page=2"],
            "stdout": json.dumps([{"body": "last", "html_url": "x"}]),
        },
        {"when": [f"{PULL}/reviews/55/comments?per_page=100&page=1"], "stdout": json.dumps([line])},
    )
    gh = _gh()

    found = await gh.comments(7)
    lines = await gh.review_comments(7, "55")

    assert len(found) == 101
    assert (found[0], found[-1]) == (Comment("c0", url.format(0)), Comment("last", "x"))
    assert lines == [LineComment("app.py", 4, "old line", "u")]


async def test_gh_merge_puts_the_method_and_head_and_reads_the_merge_commit(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": [f"{PULL}/merge"], "stdout": json.dumps({"sha": "8" * 40, "merged": True})},
        {"when": [PULL], "stdout": _pull()},
    )

    result = await _gh().merge(7, method="squash", sha=SHA)

    assert result == MergeResult(
        merged=True, scheduled=False, merge_commit_sha="8" * 40, url="https://github.com/acme/widgets/pull/7"
    )
    assert fake_cli.calls()[-1][4:] == ["--method", "PUT", *JSON_BODY, f"{PULL}/merge"]
    assert fake_cli.inputs() == [{"merge_method": "squash", "sha": SHA}]


async def test_gh_merge_of_a_merged_pull_request_reports_it_without_merging(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": [PULL], "stdout": _pull(merged=True)})

    result = await _gh().merge(7, method="merge", sha=SHA)

    assert (result.merged, result.merge_commit_sha) == (True, "9" * 40)
    assert len(fake_cli.calls()) == 1


async def test_gh_refused_merge_is_an_error_with_githubs_reason(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {
            "when": [f"{PULL}/merge"],
            "rc": 1,
            "stdout": '{"message": "Pull Request is still a draft"}',
            "stderr": "gh: Pull Request is still a draft (HTTP 405)\n",
        },
        {"when": [PULL], "stdout": _pull(draft=True)},
    )

    with pytest.raises(ForgeError, match=r"still a draft \(HTTP 405\)") as caught:
        await _gh().merge(7, method="merge", sha=SHA)
    assert not caught.value.retryable


async def test_gh_reviews_read_every_page(fake_cli: FakeCli) -> None:
    page_one = [{"user": {"login": "bob"}, "state": "COMMENTED"}] * 100
    page_two = [{"user": {"login": "alice"}, "state": "APPROVED"}]
    fake_cli.rules(
        {"when": [f"{PULL}/reviews?per_page=100&page=1"], "stdout": json.dumps(page_one)},
        {"when": [f"{PULL}/reviews?per_page=100&page=2"], "stdout": json.dumps(page_two)},
    )

    reviews = await _gh().reviews(7)

    assert reviews == Reviews(approved_by=("alice",), changes_requested_by=(), approvals_required=0)
    assert len(fake_cli.calls()) == 2


# --- glab ---------------------------------------------------------------------------------------------


async def test_glab_mark_ready_puts_the_title_without_the_draft_prefix(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["--method", "PUT", MR], "stdout": _mr(title="Add search", draft=False)},
        {"when": [MR], "stdout": _mr()},
    )

    pr = await _glab().mark_ready(4)

    assert (pr.number, pr.draft) == (4, False)
    assert fake_cli.calls()[-1] == [
        *["glab", "api", "--hostname", "gitlab.example.com", "--method", "PUT", *JSON_BODY, MR]
    ]
    assert fake_cli.inputs() == [{"title": "Add search"}]


async def test_glab_request_reviewers_looks_up_users_and_keeps_those_already_asked(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["users?username=alice"], "stdout": json.dumps([{"id": 21, "username": "alice"}])},
        {"when": ["users?username=ghost"], "stdout": "[]"},
        {"when": ["--method", "PUT", MR], "stdout": _mr()},
        {"when": [MR], "stdout": _mr()},
    )
    glab = _glab()

    await glab.request_reviewers(4, ["alice"])

    assert fake_cli.inputs() == [{"reviewer_ids": [11, 21]}]
    with pytest.raises(ForgeError, match="no user named 'ghost'"):
        await glab.request_reviewers(4, ["ghost"])
    assert len(fake_cli.inputs()) == 1


async def test_glab_description_and_notes(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": [f"{MR}/notes"], "stdout": json.dumps({"id": 77, "body": BODY})},
        {"when": ["--method", "PUT", MR], "stdout": _mr()},
        {"when": [MR], "stdout": _mr()},
    )
    glab = _glab()

    await glab.update_pull_request_body(4, BODY)
    url = await glab.comment(4, BODY)

    assert url == "https://gitlab.example.com/platform/api/-/merge_requests/4#note_77"
    assert fake_cli.inputs() == [{"description": BODY}, {"body": BODY}]


async def test_glab_reads_the_notes_oldest_first_without_system_notes(fake_cli: FakeCli) -> None:
    notes = [
        {"id": 1, "body": "looks odd", "system": False},
        {"id": 2, "body": "added 1 commit", "system": True},
    ]
    fake_cli.rules(
        {
            "when": [f"{MR}/notes?sort=asc&order_by=created_at&per_page=100&page=1"],
            "stdout": json.dumps(notes),
        },
        {"when": [MR], "stdout": _mr()},
    )
    glab = _glab()

    found = await glab.comments(4)

    assert found == [
        Comment("looks odd", "https://gitlab.example.com/platform/api/-/merge_requests/4#note_1")
    ]
    assert await glab.review_comments(4, "1") == []


async def test_glab_merge_when_the_pipeline_succeeds_is_scheduled(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": [f"{MR}/merge"], "stdout": _mr(draft=False, merge_when_pipeline_succeeds=True)},
        {"when": [MR], "stdout": _mr(draft=False)},
    )

    result = await _glab().merge(4, method="merge", sha=SHA, when_pipeline_succeeds=True)

    assert (result.merged, result.scheduled) == (False, True)
    assert fake_cli.inputs() == [{"sha": SHA, "squash": False, "merge_when_pipeline_succeeds": True}]


async def test_glab_refused_merge_says_why_from_the_merge_request(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {
            "when": [f"{MR}/merge"],
            "rc": 1,
            "stdout": '{"message": "405 Method Not Allowed"}',
            "stderr": "glab: 405 Method Not Allowed (HTTP 405)\n",
        },
        {"when": [MR], "stdout": _mr()},
    )

    with pytest.raises(ForgeError, match="merge status: draft_status"):
        await _glab().merge(4, method="squash", sha=SHA)


async def test_glab_merge_of_a_merged_merge_request_reports_it_without_merging(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": [MR], "stdout": _mr(state="merged", merge_commit_sha="7" * 40)})

    result = await _glab().merge(4, method="merge", sha=SHA)

    assert (result.merged, result.merge_commit_sha) == (True, "7" * 40)
    assert len(fake_cli.calls()) == 1


async def test_glab_reviews_read_the_approvals(fake_cli: FakeCli) -> None:
    approvals = {"approvals_left": 1, "approved_by": [{"user": {"username": "alice"}}]}
    fake_cli.rules({"when": [f"{MR}/approvals"], "stdout": json.dumps(approvals)})

    assert await _glab().reviews(4) == Reviews(
        approved_by=("alice",), changes_requested_by=(), approvals_required=1
    )

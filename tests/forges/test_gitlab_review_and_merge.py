"""The GitLab REST client's review and merge calls against the fake GitLab: ready, reviewers, description,
notes, merge (now or when the pipeline succeeds) and approvals."""

from __future__ import annotations

import pytest
from deksdenflow_fakes.gitlab import FakeGitLab
from deksdenflow_git.forges import Comment, ForgeError, GitLabForge, MergeResult, Reviews
from deksdenflow_git.forges.gitlab import ready_title

from tests.forges.conftest import GITLAB_PROJECT

BRANCH = "0007-add-search"
HEAD = "d" * 40
MRS = "/api/v4/projects/platform%2Fbackend%2Fapi/merge_requests"


def _mr(gitlab: FakeGitLab, *, title: str = "Add search") -> int:
    """An open MR whose head is ``HEAD`` (a draft if ``title`` says so)."""
    gitlab.set_branch(GITLAB_PROJECT, BRANCH, HEAD)
    return gitlab.add_mr(GITLAB_PROJECT, source_branch=BRANCH, title=title).iid


# --- ready for review ---------------------------------------------------------------------------------


async def test_mark_ready_removes_the_draft_prefix_from_the_title(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab, title="Draft: WIP: 0007 - add search")

    pr = await gitlab_forge.mark_ready(iid)

    assert (pr.number, pr.draft, pr.state) == (iid, False, "open")
    assert gitlab.mr(GITLAB_PROJECT, iid).title == "WIP: 0007 - add search"
    (put,) = gitlab.requests_to("PUT", f"{MRS}/{iid}")
    assert put.json() == {"title": "WIP: 0007 - add search"}


async def test_mark_ready_twice_or_on_a_ready_merge_request_changes_nothing(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab, title="Draft: x")
    await gitlab_forge.mark_ready(iid)

    again = await gitlab_forge.mark_ready(iid)

    assert again.draft is False
    assert len(gitlab.requests_to("PUT", "/")) == 1


def test_ready_title_removes_every_draft_marker_gitlab_recognises() -> None:
    assert ready_title("Draft: [Draft] (draft) x") == "x"
    assert ready_title("Draft - x") == "x"
    assert ready_title("Drafting x") == "Drafting x"


# --- reviewers, description, notes --------------------------------------------------------------------


async def test_request_reviewers_looks_up_user_ids_and_keeps_the_reviewers_already_asked(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    alice, bob = gitlab.add_user("alice"), gitlab.add_user("bob")

    await gitlab_forge.request_reviewers(iid, ["alice"])
    await gitlab_forge.request_reviewers(iid, ["bob", "alice"])

    assert gitlab.mr(GITLAB_PROJECT, iid).reviewers == ["alice", "bob"]
    assert [r.param("username") for r in gitlab.requests_to("GET", "/api/v4/users")] == [
        "alice",
        "bob",
        "alice",
    ]
    assert [r.json() for r in gitlab.requests_to("PUT", f"{MRS}/{iid}")] == [
        {"reviewer_ids": [alice]},
        {"reviewer_ids": [alice, bob]},
    ]


async def test_asking_an_unknown_user_for_a_review_is_an_error_naming_them(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.add_user("alice")

    with pytest.raises(ForgeError) as caught:
        await gitlab_forge.request_reviewers(iid, ["alice", "nobody-here"])

    assert not caught.value.retryable
    assert "'nobody-here'" in caught.value.message
    assert caught.value.fields["user"] == "nobody-here"
    assert gitlab.requests_to("PUT", "/") == []


async def test_update_pull_request_body_replaces_the_description(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)

    await gitlab_forge.update_pull_request_body(iid, "## Status\n- [x] step 1")

    assert gitlab.mr(GITLAB_PROJECT, iid).description == "## Status\n- [x] step 1"
    assert gitlab.requests_to("PUT", f"{MRS}/{iid}")[0].json() == {"description": "## Status\n- [x] step 1"}


async def test_comment_adds_a_note_and_returns_its_anchor_on_the_merge_request_page(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)

    url = await gitlab_forge.comment(iid, "Fixed in d0d0d0d.")

    (note,) = gitlab.mr(GITLAB_PROJECT, iid).notes
    assert note.body == "Fixed in d0d0d0d."
    assert url == f"{gitlab.url}/{GITLAB_PROJECT}/-/merge_requests/{iid}#note_{note.id}"
    assert gitlab.requests_to("POST", f"{MRS}/{iid}/notes")[0].json() == {"body": "Fixed in d0d0d0d."}


async def test_comments_lists_the_notes_oldest_first_over_every_page_without_system_notes(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    first = gitlab.add_note(GITLAB_PROJECT, iid, "ann", "note 0")
    gitlab.add_note(GITLAB_PROJECT, iid, "ann", "added 1 commit", system=True)
    for i in range(1, 101):
        gitlab.add_note(GITLAB_PROJECT, iid, "ann", f"note {i}")
    posted = await gitlab_forge.comment(iid, "ours")

    comments = await gitlab_forge.comments(iid)

    assert [c.body for c in comments] == [*(f"note {i}" for i in range(101)), "ours"]
    assert comments[0] == Comment(
        "note 0", f"{gitlab.url}/{GITLAB_PROJECT}/-/merge_requests/{iid}#note_{first.id}"
    )
    assert comments[-1].url == posted
    pages = gitlab.requests_to("GET", f"{MRS}/{iid}/notes")
    assert [(r.param("page"), r.param("sort")) for r in pages] == [("1", "asc"), ("2", "asc")]


async def test_gitlab_has_no_review_grouping_line_comments(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.add_note(GITLAB_PROJECT, iid, "ann", "a note")
    assert await gitlab_forge.review_comments(iid, "1") == []


# --- merge --------------------------------------------------------------------------------------------


async def test_merge_sends_the_expected_head_and_squash_and_returns_the_merge_commit(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)

    result = await gitlab_forge.merge(iid, method="squash", sha=HEAD)

    stored = gitlab.mr(GITLAB_PROJECT, iid)
    assert (stored.state, stored.squash) == ("merged", True)
    assert stored.merge_commit_sha
    assert result == MergeResult(
        merged=True,
        scheduled=False,
        merge_commit_sha=stored.merge_commit_sha,
        url=f"{gitlab.url}/{GITLAB_PROJECT}/-/merge_requests/{iid}",
    )
    (put,) = gitlab.requests_to("PUT", f"{MRS}/{iid}/merge")
    assert put.json() == {"sha": HEAD, "squash": True, "merge_when_pipeline_succeeds": False}


async def test_merging_a_merged_merge_request_again_reports_the_same_merge_without_asking(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    first = await gitlab_forge.merge(iid, method="merge", sha=HEAD)

    assert await gitlab_forge.merge(iid, method="merge", sha=HEAD) == first
    assert len(gitlab.requests_to("PUT", "/")) == 1


async def test_merge_when_the_pipeline_succeeds_is_scheduled_and_gitlab_merges_on_green(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.set_ci(GITLAB_PROJECT, HEAD, state="running", ref=BRANCH)

    scheduled = await gitlab_forge.merge(iid, method="merge", sha=HEAD, when_pipeline_succeeds=True)
    again = await gitlab_forge.merge(iid, method="merge", sha=HEAD, when_pipeline_succeeds=True)

    assert (scheduled.merged, scheduled.scheduled) == (again.merged, again.scheduled) == (False, True)
    assert len(gitlab.requests_to("PUT", "/")) == 1  # the second call saw it scheduled already
    assert gitlab.mr(GITLAB_PROJECT, iid).merge_when_pipeline_succeeds
    assert gitlab.requests_to("PUT", "/")[0].json()["merge_when_pipeline_succeeds"] is True

    gitlab.set_ci(GITLAB_PROJECT, HEAD, state="success", ref=BRANCH)

    assert gitlab.mr(GITLAB_PROJECT, iid).state == "merged"
    done = await gitlab_forge.merge(iid, method="merge", sha=HEAD, when_pipeline_succeeds=True)
    assert (done.merged, done.merge_commit_sha) == (True, gitlab.mr(GITLAB_PROJECT, iid).merge_commit_sha)


async def test_a_failed_pipeline_cancels_the_scheduled_merge(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.set_ci(GITLAB_PROJECT, HEAD, state="running", ref=BRANCH)
    await gitlab_forge.merge(iid, method="merge", sha=HEAD, when_pipeline_succeeds=True)

    gitlab.set_ci(GITLAB_PROJECT, HEAD, state="failure", ref=BRANCH)

    stored = gitlab.mr(GITLAB_PROJECT, iid)
    assert (stored.state, stored.merge_when_pipeline_succeeds) == ("opened", False)


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        ("draft", "405 (405 Method Not Allowed); merge status: draft_status"),
        ("moved", f"409 (SHA does not match HEAD of source branch: {HEAD})"),
        ("unapproved", "405 (405 Method Not Allowed); merge status: not_approved"),
    ],
)
async def test_a_refused_merge_is_a_non_retryable_error_with_gitlabs_reason(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge, arrange: str, reason: str
) -> None:
    iid = _mr(gitlab, title="Draft: x" if arrange == "draft" else "x")
    if arrange == "unapproved":
        gitlab.set_approvals_required(GITLAB_PROJECT, 1)
    sha = "f" * 40 if arrange == "moved" else HEAD

    with pytest.raises(ForgeError) as caught:
        await gitlab_forge.merge(iid, method="merge", sha=sha)

    assert not caught.value.retryable
    assert reason in caught.value.message
    assert gitlab.mr(GITLAB_PROJECT, iid).state == "opened"


async def test_merging_a_closed_merge_request_is_an_error(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.close(GITLAB_PROJECT, iid)

    with pytest.raises(ForgeError, match="closed without being merged"):
        await gitlab_forge.merge(iid, method="merge", sha=HEAD)
    assert gitlab.requests_to("PUT", "/") == []


# --- approvals ----------------------------------------------------------------------------------------


async def test_reviews_are_the_approvers_and_the_approvals_still_missing(
    gitlab: FakeGitLab, gitlab_forge: GitLabForge
) -> None:
    iid = _mr(gitlab)
    gitlab.set_approvals_required(GITLAB_PROJECT, 3)
    gitlab.approve(GITLAB_PROJECT, iid, "bob")
    gitlab.approve(GITLAB_PROJECT, iid, "alice")

    assert await gitlab_forge.reviews(iid) == Reviews(
        approved_by=("alice", "bob"), changes_requested_by=(), approvals_required=1
    )
    assert gitlab.requests[-1].path == f"{MRS}/{iid}/approvals"

"""Webhook deliveries authenticated and normalised: recorded-shape payloads in, WebhookSignal out.

Expected signatures are computed here from the specifications (GitHub: hex HMAC-SHA256 of the body;
GitLab signing token: Standard Webhooks v1), never with the module's own helpers, so a wrong helper
cannot vouch for itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from deksdenflow_api.webhooks import (
    GITLAB_SIGNATURE_TOLERANCE_SECONDS,
    InvalidWebhook,
    WebhookSignal,
    decode_gitlab_signing_token,
    github_signature,
    normalise_ci_state,
    parse_github,
    parse_gitlab,
    verify_github_signature,
    verify_gitlab_signature,
    verify_gitlab_token,
)
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ReviewComment,
    ReviewFeedback,
    ReviewState,
)
from deksdenflow_core.domain.review_reply import review_reply_marker
from deksdenflow_core.errors import InvalidCommand

from tests.webhooks import payloads
from tests.webhooks.payloads import BRANCH, REPO, SHA, load, load_json

MERGE_SHA = "3" * 40
GITHUB_URLS = (
    "https://github.com/acme/demo.git",
    "git@github.com:acme/demo.git",
    "https://github.com/acme/demo",
    "git://github.com/acme/demo.git",
)
GITLAB_URLS = (
    "https://gitlab.com/acme/demo.git",
    "git@gitlab.com:acme/demo.git",
    "https://gitlab.com/acme/demo",
)
RUN_URL = "https://github.com/acme/demo/actions/runs/9876543210"
JOB_URL = "https://github.com/acme/demo/actions/runs/9876543210/job/27182818284"
PIPELINE_URL = "https://gitlab.com/acme/demo/-/pipelines/1634567890"
PR_URL = "https://github.com/acme/demo/pull/17"
MR_URL = "https://gitlab.com/acme/demo/-/merge_requests/17"
REVIEW_BODY = (
    "Please rename `x` in `login()` to something that says what it holds, and add a test for an empty "
    "password."
)
REVIEW = ReviewFeedback(
    review_id="2345678901",
    reviewer="ann-reviewer",
    state=ReviewState.CHANGES_REQUESTED,
    body=REVIEW_BODY,
    commit_sha=SHA,
    url=f"{PR_URL}#pullrequestreview-2345678901",
)
NOTE_URL = f"{MR_URL}#note_2234567890"

# fixture -> (provider, event header, the fields the parse must produce)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "github_workflow_run_completed_success": (
        "github",
        "workflow_run",
        {
            "action": "completed",
            "kind": "ci",
            "ci_state": "success",
            "raw_status": "success",
            "run_url": RUN_URL,
            "ci_name": "CI",
        },
    ),
    "github_workflow_run_completed_failure": (
        "github",
        "workflow_run",
        {
            "action": "completed",
            "kind": "ci",
            "ci_state": "failure",
            "raw_status": "failure",
            "run_url": RUN_URL,
            "ci_name": "CI",
        },
    ),
    "github_workflow_run_in_progress": (
        "github",
        "workflow_run",
        {
            "action": "in_progress",
            "kind": "ci",
            "ci_state": "running",
            "raw_status": "in_progress",
            "run_url": RUN_URL,
            "ci_name": "CI",
        },
    ),
    "github_check_suite_completed_success": (
        "github",
        "check_suite",
        {
            "action": "completed",
            "kind": "ci",
            "ci_state": "success",
            "raw_status": "success",
            "run_url": "",
            "ci_name": "GitHub Actions",
        },
    ),
    "github_check_run_completed_failure": (
        "github",
        "check_run",
        {
            "action": "completed",
            "kind": "ci",
            "ci_state": "failure",
            "raw_status": "failure",
            "run_url": JOB_URL,
            "ci_name": "test (3.11)",
        },
    ),
    "github_check_run_in_progress": (
        "github",
        "check_run",
        {
            "action": "created",
            "kind": "ci",
            "ci_state": "running",
            "raw_status": "in_progress",
            "run_url": JOB_URL,
            "ci_name": "test (3.11)",
        },
    ),
    "github_status_success": (
        "github",
        "status",
        {
            "action": "",
            "kind": "ci",
            "ci_state": "success",
            "raw_status": "success",
            "run_url": "https://ci.example.com/acme/demo/builds/4242",
            "ci_name": "ci/deksdenflow",
        },
    ),
    "github_status_failure": (
        "github",
        "status",
        {
            "action": "",
            "kind": "ci",
            "ci_state": "failure",
            "raw_status": "failure",
            "run_url": "https://ci.example.com/acme/demo/builds/4242",
            "ci_name": "ci/deksdenflow",
        },
    ),
    "github_pull_request_closed_merged": (
        "github",
        "pull_request",
        {
            "action": "closed",
            "kind": "pull_request",
            "pr_number": 17,
            "pr_url": "https://github.com/acme/demo/pull/17",
            "pr_merged": True,
            "pr_closed": False,
            "merge_commit_sha": MERGE_SHA,
        },
    ),
    "github_pull_request_closed_unmerged": (
        "github",
        "pull_request",
        {
            "action": "closed",
            "kind": "pull_request",
            "pr_number": 17,
            "pr_url": "https://github.com/acme/demo/pull/17",
            "pr_merged": False,
            "pr_closed": True,
            "merge_commit_sha": "",
        },
    ),
    "github_pull_request_opened": (
        "github",
        "pull_request",
        {
            "action": "opened",
            "kind": "pull_request",
            "pr_number": 17,
            "pr_url": "https://github.com/acme/demo/pull/17",
            "pr_merged": False,
            "pr_closed": False,
            "ignored_reason": "pull request action 'opened' is neither a merge nor a close",
        },
    ),
    "github_pull_request_review_changes_requested": (
        "github",
        "pull_request_review",
        {"action": "submitted", "kind": "review", "pr_number": 17, "pr_url": PR_URL, "review": REVIEW},
    ),
    "github_pull_request_review_dismissed": (
        "github",
        "pull_request_review",
        {
            "action": "dismissed",
            "kind": "review",
            "pr_number": 17,
            "pr_url": PR_URL,
            "review": REVIEW.model_copy(update={"state": ReviewState.DISMISSED}),
        },
    ),
    "github_pull_request_review_comment_created": (
        "github",
        "pull_request_review_comment",
        {
            "action": "created",
            "kind": "review",
            "pr_number": 17,
            "pr_url": PR_URL,
            "review": None,
            "ignored_reason": "a comment of review 2345678901, which its pull_request_review delivery "
            "applies with all its comments",
        },
    ),
    "github_ping": ("github", "ping", {"kind": "ping", "branch": "", "head_sha": ""}),
    "gitlab_pipeline_success": (
        "gitlab",
        "Pipeline Hook",
        {
            "event": "pipeline",
            "action": "",
            "kind": "ci",
            "ci_state": "success",
            "raw_status": "success",
            "run_url": PIPELINE_URL,
            "ci_name": "pipeline",
        },
    ),
    "gitlab_pipeline_failed": (
        "gitlab",
        "Pipeline Hook",
        {
            "event": "pipeline",
            "kind": "ci",
            "ci_state": "failure",
            "raw_status": "failed",
            "run_url": PIPELINE_URL,
            "ci_name": "pipeline",
        },
    ),
    "gitlab_pipeline_running": (
        "gitlab",
        "Pipeline Hook",
        {
            "event": "pipeline",
            "kind": "ci",
            "ci_state": "running",
            "raw_status": "running",
            "run_url": PIPELINE_URL,
            "ci_name": "pipeline",
        },
    ),
    "gitlab_merge_request_merged": (
        "gitlab",
        "Merge Request Hook",
        {
            "event": "merge_request",
            "action": "merge",
            "kind": "pull_request",
            "pr_number": 17,
            "pr_url": "https://gitlab.com/acme/demo/-/merge_requests/17",
            "pr_merged": True,
            "pr_closed": False,
            "merge_commit_sha": MERGE_SHA,
        },
    ),
    "gitlab_merge_request_closed": (
        "gitlab",
        "Merge Request Hook",
        {
            "event": "merge_request",
            "action": "close",
            "kind": "pull_request",
            "pr_number": 17,
            "pr_url": "https://gitlab.com/acme/demo/-/merge_requests/17",
            "pr_merged": False,
            "pr_closed": True,
            "merge_commit_sha": "",
        },
    ),
    "gitlab_merge_request_approved": (
        "gitlab",
        "Merge Request Hook",
        {
            "event": "merge_request",
            "action": "approved",
            "kind": "review",
            "pr_number": 17,
            "pr_url": MR_URL,
            "review": ReviewFeedback(
                reviewer="ann-reviewer", state=ReviewState.APPROVED, commit_sha=SHA, url=MR_URL
            ),
        },
    ),
    "gitlab_note_merge_request_diff": (
        "gitlab",
        "Note Hook",
        {
            "event": "note",
            "action": "create",
            "kind": "review",
            "pr_number": 17,
            "pr_url": MR_URL,
            "review": ReviewFeedback(
                review_id="2234567890",
                reviewer="ann-reviewer",
                state=ReviewState.COMMENTED,
                comments=(
                    ReviewComment(
                        path="app/login.py", line=2, body="`x` is a session: call it `session`.", url=NOTE_URL
                    ),
                ),
                commit_sha=SHA,
                url=NOTE_URL,
            ),
        },
    ),
}

# What every signal has unless a case says otherwise.
DEFAULTS: dict[str, Any] = {
    "branch": BRANCH,
    "head_sha": SHA,
    "repository": REPO,
    "protocol_run_id": "",
    "ci_state": None,
    "raw_status": "",
    "run_url": "",
    "ci_name": "",
    "pr_number": 0,
    "pr_url": "",
    "pr_merged": False,
    "pr_closed": False,
    "merge_commit_sha": "",
    "ignored_reason": "",
    "review": None,
}


def parse(provider: str, header: str, body: bytes) -> WebhookSignal:
    return parse_github(header, body) if provider == "github" else parse_gitlab(header, body)


def test_every_fixture_has_a_case() -> None:
    assert set(payloads.names()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_parses_to_expected_signal(name: str) -> None:
    provider, header, fields = CASES[name]
    signal = parse(provider, header, load(name))

    expected = {
        **DEFAULTS,
        "provider": provider,
        "event": header if provider == "github" else fields.get("event"),
        "repository_urls": GITHUB_URLS if provider == "github" else GITLAB_URLS,
        **fields,
    }
    if name == "github_ping":
        expected["ignored_reason"] = signal.ignored_reason  # checked below: wording is free, presence is not
        assert signal.ignored_reason
    actual = {key: getattr(signal, key) for key in expected}
    assert actual == expected


def test_fixture_bodies_are_the_recorded_bytes() -> None:
    raw = load("github_status_success")
    assert raw == (payloads.DIRECTORY / "github_status_success.json").read_bytes()
    assert json.loads(raw)["sha"] == SHA


# --- substitution helper --------------------------------------------------------------------------------


def test_load_substitutes_branch_sha_and_repository_everywhere() -> None:
    sha = "a" * 40
    body = load("github_workflow_run_completed_success", branch='feat/"quoted"', sha=sha, repo="other/thing")

    signal = parse_github("workflow_run", body)

    assert (signal.branch, signal.head_sha, signal.repository) == ('feat/"quoted"', sha, "other/thing")
    assert signal.repository_urls == (
        "https://github.com/other/thing.git",
        "git@github.com:other/thing.git",
        "https://github.com/other/thing",
        "git://github.com/other/thing.git",
    )
    assert signal.run_url == "https://github.com/other/thing/actions/runs/9876543210"
    assert SHA not in body.decode()
    assert BRANCH not in body.decode()


def test_load_substitutes_in_gitlab_payloads() -> None:
    body = load("gitlab_merge_request_merged", branch="0002-logout", sha="b" * 40, repo="team/app")
    signal = parse_gitlab("Merge Request Hook", body)
    assert (signal.branch, signal.head_sha, signal.repository) == ("0002-logout", "b" * 40, "team/app")
    assert signal.pr_url == "https://gitlab.com/team/app/-/merge_requests/17"
    assert "https://gitlab.com/team/app.git" in signal.repository_urls


def test_load_rejects_unknown_substitutions() -> None:
    with pytest.raises(TypeError, match="unknown substitution"):
        load("github_ping", owner="x")


# --- GitHub specifics -----------------------------------------------------------------------------------


def _github(name: str, event: str, **changes: Any) -> WebhookSignal:
    """Parse fixture ``name`` after applying ``changes`` ("a.b.c" paths) to its JSON."""
    data = load_json(name)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return parse_github(event, json.dumps(data).encode())


_DELETE: Any = object()


def test_github_unknown_event_is_other_not_an_error() -> None:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/demo"}}).encode()
    signal = parse_github("push", body)
    assert signal.kind == "other"
    assert signal.ignored_reason == "github event 'push' is not handled"
    assert signal.repository == "acme/demo"
    assert signal.ci_state is None


def test_github_ping_is_ignored_with_a_reason() -> None:
    signal = parse_github("ping", load("github_ping"))
    assert signal.kind == "ping"
    assert "ping" in signal.ignored_reason


@pytest.mark.parametrize("conclusion", ["skipped", "stale"])
def test_github_non_actionable_conclusion_is_ignored(conclusion: str) -> None:
    signal = _github(
        "github_workflow_run_completed_success", "workflow_run", **{"workflow_run.conclusion": conclusion}
    )
    assert signal.kind == "ci"
    assert signal.ci_state is None
    assert signal.raw_status == conclusion
    assert signal.ignored_reason == f"CI state '{conclusion}' is not acted on"


def test_github_requested_workflow_run_is_running_from_its_status() -> None:
    signal = _github(
        "github_workflow_run_in_progress",
        "workflow_run",
        **{"action": "requested", "workflow_run.status": "queued"},
    )
    assert (signal.ci_state, signal.raw_status, signal.action) == ("running", "queued", "requested")


def test_github_workflow_name_falls_back_to_the_workflow_block() -> None:
    signal = _github("github_workflow_run_completed_success", "workflow_run", **{"workflow_run.name": ""})
    assert signal.ci_name == "CI"


@pytest.mark.parametrize(
    ("ref", "branch"),
    [("refs/heads/0001-add-login", "0001-add-login"), ("refs/tags/v1.2.0", ""), ("feature/x", "feature/x")],
)
def test_github_ref_like_branch_is_stripped(ref: str, branch: str) -> None:
    signal = _github(
        "github_workflow_run_completed_success", "workflow_run", **{"workflow_run.head_branch": ref}
    )
    assert signal.branch == branch


def test_github_check_suite_requested_without_status_is_running() -> None:
    signal = _github(
        "github_check_suite_completed_success",
        "check_suite",
        **{"action": "rerequested", "check_suite.status": None, "check_suite.conclusion": None},
    )
    assert (signal.ci_state, signal.raw_status) == ("running", "rerequested")


def test_github_check_run_queued_is_running() -> None:
    signal = _github("github_check_run_in_progress", "check_run", **{"check_run.status": "queued"})
    assert signal.ci_state == "running"
    assert signal.branch == BRANCH


def test_github_check_run_without_html_url_uses_details_url() -> None:
    signal = _github(
        "github_check_run_completed_failure",
        "check_run",
        **{"check_run.html_url": None, "check_run.details_url": "https://ci.example.com/run/7"},
    )
    assert signal.run_url == "https://ci.example.com/run/7"


def test_github_status_with_several_branches_takes_the_one_it_heads() -> None:
    data = load_json("github_status_success")
    assert len(data["branches"]) == 2  # the fixture itself has "main" (containing the commit) and ours
    assert parse_github("status", load("github_status_success")).branch == BRANCH


def _status_branches(*branches: tuple[str, str]) -> str:
    entries = [
        {"name": name, "commit": {"sha": sha, "url": ""}, "protected": False} for name, sha in branches
    ]
    return _github("github_status_success", "status", branches=entries).branch


def test_github_status_branch_rules() -> None:
    other = "2" * 40
    assert _status_branches(("only-one", other)) == "only-one"
    assert _status_branches(("main", other), ("develop", other)) == ""
    assert _status_branches(("a", SHA), ("b", SHA)) == ""
    assert _status_branches() == ""
    assert _github("github_status_success", "status", branches=_DELETE).branch == ""


def test_github_status_without_target_url_has_no_run_url() -> None:
    assert _github("github_status_failure", "status", target_url=None).run_url == ""


@pytest.mark.parametrize("state", ["pending", "error"])
def test_github_status_states(state: str) -> None:
    signal = _github("github_status_failure", "status", state=state)
    assert signal.ci_state == ("running" if state == "pending" else "failure")


def test_github_pull_request_merge_commit_only_when_merged() -> None:
    unmerged = load_json("github_pull_request_closed_unmerged")
    assert unmerged["pull_request"]["merge_commit_sha"] == "4" * 40  # GitHub's test merge, not a real one
    assert parse_github("pull_request", load("github_pull_request_closed_unmerged")).merge_commit_sha == ""


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if n.startswith("github_")])
def test_a_github_form_encoded_delivery_reads_like_its_json(name: str) -> None:
    body = load(name)
    form = urlencode({"payload": body.decode()}).encode()
    for content_type in (
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    ):
        assert parse_github(CASES[name][1], form, content_type) == parse_github(CASES[name][1], body)


@pytest.mark.parametrize(
    "form",
    [b"", b"zen=1", b"payload=%7B%7D&payload=%7B%7D", b"payload=%FF", b"payload=\xff", b"payload=%5B%5D"],
)
def test_a_github_form_without_one_readable_payload_field_is_invalid(form: bytes) -> None:
    with pytest.raises(InvalidWebhook):
        parse_github("workflow_run", form, "application/x-www-form-urlencoded")


def test_protocol_run_id_is_read_from_the_top_level_only() -> None:
    data = load_json("github_workflow_run_completed_success")
    data["protocol_run_id"] = "pr-0123"
    assert parse_github("workflow_run", json.dumps(data).encode()).protocol_run_id == "pr-0123"

    data["protocol_run_id"] = 123
    assert parse_github("workflow_run", json.dumps(data).encode()).protocol_run_id == ""

    gitlab = load_json("gitlab_pipeline_success")
    gitlab["protocol_run_id"] = "pr-0456"
    assert parse_gitlab("Pipeline Hook", json.dumps(gitlab).encode()).protocol_run_id == "pr-0456"


# --- GitLab specifics -----------------------------------------------------------------------------------


def _gitlab(name: str, header: str, **attributes: Any) -> WebhookSignal:
    data = load_json(name)
    data["object_attributes"].update(attributes)
    return parse_gitlab(header, json.dumps(data).encode())


def test_gitlab_tag_pipeline_is_ignored() -> None:
    signal = _gitlab("gitlab_pipeline_success", "Pipeline Hook", tag=True, ref="v1.2.0")
    assert signal.kind == "ci"
    assert signal.branch == ""
    assert signal.ignored_reason.startswith("tag pipeline")


def test_gitlab_pipeline_url_falls_back_to_the_project() -> None:
    signal = _gitlab("gitlab_pipeline_failed", "Pipeline Hook", url=None)
    assert signal.run_url == PIPELINE_URL


def test_gitlab_merge_request_pipeline_takes_the_source_branch() -> None:
    data = load_json("gitlab_pipeline_running")
    data["object_attributes"]["ref"] = "refs/merge-requests/17/head"
    data["object_attributes"]["source"] = "merge_request_event"
    data["merge_request"] = {"id": 351234567, "iid": 17, "source_branch": BRANCH, "target_branch": "main"}
    assert parse_gitlab("Pipeline Hook", json.dumps(data).encode()).branch == BRANCH


@pytest.mark.parametrize(("status", "state"), [("manual", None), ("skipped", None), ("canceled", "failure")])
def test_gitlab_pipeline_states(status: str, state: str | None) -> None:
    signal = _gitlab("gitlab_pipeline_running", "Pipeline Hook", status=status)
    assert signal.ci_state == state
    assert bool(signal.ignored_reason) is (state is None)


def test_gitlab_object_kind_is_the_authority_over_the_header() -> None:
    signal = parse_gitlab("Merge Request Hook", load("gitlab_pipeline_success"))
    assert (signal.event, signal.kind) == ("pipeline", "ci")


def test_gitlab_header_names_the_event_when_the_body_does_not() -> None:
    data = load_json("gitlab_pipeline_success")
    del data["object_kind"]
    signal = parse_gitlab("Pipeline Hook", json.dumps(data).encode())
    assert (signal.event, signal.ci_state) == ("pipeline", "success")


def test_gitlab_unknown_event_is_other() -> None:
    body = json.dumps(
        {"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": REPO}}
    )
    signal = parse_gitlab("Push Hook", body.encode())
    assert (signal.kind, signal.event, signal.repository) == ("other", "push", REPO)
    assert signal.ignored_reason == "gitlab event 'push' is not handled"


def test_gitlab_merge_request_state_merged_counts_as_merged() -> None:
    signal = _gitlab("gitlab_merge_request_merged", "Merge Request Hook", action="update")
    assert (signal.pr_merged, signal.pr_closed, signal.merge_commit_sha) == (True, False, MERGE_SHA)


def test_gitlab_open_merge_request_is_ignored() -> None:
    signal = _gitlab(
        "gitlab_merge_request_closed", "Merge Request Hook", action="open", state="opened", state_id=1
    )
    assert (signal.pr_merged, signal.pr_closed) == (False, False)
    assert (
        signal.ignored_reason == "merge request action 'open' (state 'opened') is neither a merge nor a close"
    )


# --- reviews --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("approved", ReviewState.APPROVED),
        ("commented", ReviewState.COMMENTED),
        ("CHANGES_REQUESTED", ReviewState.CHANGES_REQUESTED),
    ],
)
def test_a_submitted_github_review_says_its_verdict(raw: str, state: ReviewState) -> None:
    signal = _github(
        "github_pull_request_review_changes_requested", "pull_request_review", **{"review.state": raw}
    )
    assert signal.review is not None
    assert (signal.review.state, signal.review.reviewer, signal.branch) == (state, "ann-reviewer", BRANCH)


def test_a_github_review_without_words_has_an_empty_body() -> None:
    signal = _github(
        "github_pull_request_review_changes_requested", "pull_request_review", **{"review.body": None}
    )
    assert signal.review is not None
    assert signal.review.body == ""


def test_an_edited_github_review_is_not_acted_on() -> None:
    signal = _github("github_pull_request_review_changes_requested", "pull_request_review", action="edited")
    assert (signal.kind, signal.review) == ("review", None)
    assert (
        signal.ignored_reason
        == "pull request review action 'edited' (state 'changes_requested') is not acted on"
    )


def test_a_github_comment_under_no_review_is_a_review_of_its_own() -> None:
    signal = _github(
        "github_pull_request_review_comment_created",
        "pull_request_review_comment",
        **{"comment.pull_request_review_id": None, "comment.line": None},
    )
    url = f"{PR_URL}#discussion_r1912345678"
    assert signal.ignored_reason == ""
    assert signal.review == ReviewFeedback(
        review_id="1912345678",
        reviewer="ann-reviewer",
        state=ReviewState.COMMENTED,
        comments=(
            ReviewComment(path="app/login.py", line=2, body="`x` is a session: call it `session`.", url=url),
        ),
        commit_sha=SHA,
        url=url,
    )


def test_an_edited_github_review_comment_is_not_acted_on() -> None:
    signal = _github(
        "github_pull_request_review_comment_created", "pull_request_review_comment", action="edited"
    )
    assert signal.ignored_reason == "review comment action 'edited' is not acted on"


def test_deksdenflows_own_replies_are_never_reviews() -> None:
    """Our reply comes back as a webhook: read as a review it would ask for a fix of the fix, for ever."""
    reply = (
        f"Addressed in 1111111 (step 04-part-4.md): renamed it.\n\n@ann-reviewer\n{review_reply_marker('7')}"
    )
    own = [
        _github(
            "github_pull_request_review_changes_requested", "pull_request_review", **{"review.body": reply}
        ),
        _github(
            "github_pull_request_review_comment_created",
            "pull_request_review_comment",
            **{"comment.body": reply, "comment.pull_request_review_id": None},
        ),
        _gitlab_note(note=reply),
        _gitlab_note(note=reply, position=None),
    ]
    for signal in own:
        assert (signal.kind, signal.review) == ("review", None)
        assert "reply marker" in signal.ignored_reason


def _gitlab_note(**attributes: Any) -> WebhookSignal:
    return _gitlab("gitlab_note_merge_request_diff", "Note Hook", **attributes)


def test_a_gitlab_note_on_the_whole_merge_request_is_the_reviews_body() -> None:
    signal = _gitlab_note(position=None, type=None, line_code=None, note="This MR needs a changelog entry.")
    assert signal.review is not None
    assert (signal.review.body, signal.review.comments) == ("This MR needs a changelog entry.", ())
    assert signal.review.commit_sha == SHA, "the head of the merge request when the note was made"


def test_a_gitlab_diff_note_on_a_removed_line_names_the_old_line() -> None:
    data = load_json("gitlab_note_merge_request_diff")
    data["object_attributes"]["position"] |= {"new_path": None, "new_line": None, "old_line": 9}
    signal = parse_gitlab("Note Hook", json.dumps(data).encode())
    assert signal.review is not None
    assert [(c.path, c.line) for c in signal.review.comments] == [("app/login.py", 9)]


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"system": True}, "a system note (GitLab's own record of a change)"),
        ({"action": "update"}, "note action 'update' is not acted on"),
    ],
)
def test_gitlab_system_notes_and_edits_are_not_reviews(attributes: dict[str, Any], reason: str) -> None:
    signal = _gitlab_note(**attributes)
    assert (signal.kind, signal.review, signal.ignored_reason) == ("review", None, reason)


def test_a_gitlab_note_without_an_action_is_a_new_one() -> None:
    data = load_json("gitlab_note_merge_request_diff")
    del data["object_attributes"]["action"]
    assert parse_gitlab("Note Hook", json.dumps(data).encode()).review is not None


def test_a_gitlab_note_on_an_issue_is_not_a_review() -> None:
    signal = _gitlab_note(noteable_type="Issue")
    assert (signal.kind, signal.review) == ("other", None)
    assert signal.ignored_reason == "a note on Issue, not on a merge request"


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("approval", ReviewState.APPROVED),
        ("approved", ReviewState.APPROVED),
        ("unapproval", ReviewState.DISMISSED),
        ("unapproved", ReviewState.DISMISSED),
    ],
)
def test_gitlab_approvals_given_and_taken_back(action: str, state: ReviewState) -> None:
    signal = _gitlab("gitlab_merge_request_approved", "Merge Request Hook", action=action)
    assert signal.review is not None
    assert (signal.kind, signal.review.state, signal.review.reviewer) == ("review", state, "ann-reviewer")
    assert signal.review.review_id == "", "GitLab names no approval: the delivery id tells them apart"


# --- invalid deliveries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "body", "message"),
    [
        ("workflow_run", b"{not json", "not valid JSON"),
        ("workflow_run", b"\xff\xfe\x00", "not valid JSON"),
        ("workflow_run", b"[1, 2]", "must be a JSON object, got list"),
        ("workflow_run", b'"text"', "must be a JSON object, got str"),
        ("workflow_run", b'{"action": "completed"}', "no 'workflow_run' object"),
        ("workflow_run", b'{"workflow_run": "x"}', "no 'workflow_run' object"),
        ("check_suite", b"{}", "no 'check_suite' object"),
        ("check_run", b"{}", "no 'check_run' object"),
        ("pull_request", b'{"action": "closed"}', "no 'pull_request' object"),
        ("pull_request_review", b'{"action": "submitted", "review": {}}', "no 'pull_request' object"),
        ("pull_request_review", b'{"action": "submitted", "pull_request": {}}', "no 'review' object"),
        ("pull_request_review_comment", b'{"action": "created", "pull_request": {}}', "no 'comment' object"),
        ("status", b'{"state": "success"}', "no 'sha' string"),
        ("status", b'{"sha": "abc"}', "no 'state' string"),
        ("", b"{}", "no X-GitHub-Event header"),
    ],
)
def test_github_invalid_delivery(event: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidWebhook, match=message) as caught:
        parse_github(event, body)
    assert isinstance(caught.value, InvalidCommand)
    assert caught.value.code == "invalid_webhook"
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ("Pipeline Hook", b"", "not valid JSON"),
        ("Pipeline Hook", b"null", "must be a JSON object, got NoneType"),
        ("Pipeline Hook", b'{"object_kind": "pipeline"}', "no 'object_attributes' object"),
        ("Merge Request Hook", b'{"object_kind": "merge_request"}', "no 'object_attributes' object"),
        ("Note Hook", b'{"object_kind": "note"}', "no 'object_attributes' object"),
        ("", b'{"project": {}}', "names no event"),
    ],
)
def test_gitlab_invalid_delivery(header: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidWebhook, match=message):
        parse_gitlab(header, body)


# --- CI state mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "in_progress",
        "queued",
        "pending",
        "running",
        "requested",
        "waiting",
        "created",
        "waiting_for_resource",
        "preparing",
        "scheduled",
        "IN_PROGRESS",
        " Running ",
    ],
)
def test_running_states(raw: str) -> None:
    assert normalise_ci_state(raw) == "running"


@pytest.mark.parametrize("raw", ["success", "neutral", "passed", "SUCCESS"])
def test_success_states(raw: str) -> None:
    assert normalise_ci_state(raw) == "success"


@pytest.mark.parametrize(
    "raw",
    [
        "failure",
        "failed",
        "timed_out",
        "cancelled",
        "canceled",
        "error",
        "action_required",
        "startup_failure",
        "Failed",
    ],
)
def test_failure_states(raw: str) -> None:
    assert normalise_ci_state(raw) == "failure"


@pytest.mark.parametrize("raw", ["skipped", "manual", "stale", "", "completed", "unknown"])
def test_states_not_acted_on(raw: str) -> None:
    assert normalise_ci_state(raw) is None


# --- GitHub signature -----------------------------------------------------------------------------------


def _hub_signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 as GitHub documents it: "sha256=" + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature_matches_githubs_documented_example() -> None:
    # From GitHub's "Validating webhook deliveries" page (testing the webhook payload validation).
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == expected
    assert verify_github_signature(["It's a Secret to Everybody"], b"Hello, World!", expected) == 0


def test_github_signature_accepts_the_right_secret() -> None:
    body = load("github_workflow_run_completed_success")
    assert verify_github_signature(["s3cret"], body, _hub_signature("s3cret", body)) == 0


def test_github_signature_second_of_two_secrets_returns_one() -> None:
    body = load("github_pull_request_closed_merged")
    assert verify_github_signature(["old", "new"], body, _hub_signature("new", body)) == 1
    assert verify_github_signature(["old", "new"], body, _hub_signature("old", body)) == 0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=zz",
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=" + hmac.new(b"s3cret", b"x", hashlib.sha1).hexdigest(),
        "garbage",
        "sha256=\u00e9\u00e9",
    ],
)
def test_github_signature_rejects_missing_or_malformed_header(header: str | None) -> None:
    assert verify_github_signature(["s3cret"], b"x", header) is None


def test_github_signature_rejects_wrong_secret_and_tampered_body() -> None:
    body = load("github_check_run_completed_failure")
    header = _hub_signature("s3cret", body)
    assert verify_github_signature(["other"], body, header) is None
    assert verify_github_signature(["s3cret"], body.replace(b"failure", b"success"), header) is None
    assert verify_github_signature([], body, header) is None


def test_github_signature_never_matches_an_empty_secret() -> None:
    assert verify_github_signature(["", "s3cret"], b"x", _hub_signature("", b"x")) is None


# --- GitLab token ---------------------------------------------------------------------------------------


def test_gitlab_token() -> None:
    assert verify_gitlab_token(["first", "second"], "second") == 1
    assert verify_gitlab_token(["first", "second"], "first") == 0
    assert verify_gitlab_token(["first", "second"], "third") is None
    assert verify_gitlab_token(["first"], "firs") is None
    assert verify_gitlab_token(["first"], None) is None
    assert verify_gitlab_token(["", "first"], "") is None
    assert verify_gitlab_token(["first"], "\u00e9") is None


# --- GitLab signing token (Standard Webhooks) -----------------------------------------------------------

KEY = bytes(range(32))
TOKEN = "whsec_" + base64.b64encode(KEY).decode()
OTHER_TOKEN = "whsec_" + base64.b64encode(b"\x42" * 32).decode()
NOW = 1_736_503_601
DELIVERY = "9d6b2f3e-5c1a-4e7b-8f00-3a2b1c0d9e8f"


def _standard_signature(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """webhook-signature entry per the Standard Webhooks spec: v1,base64(HMAC-SHA256(key, id.ts.body))."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def _signed_headers(
    body: bytes, key: bytes = KEY, timestamp: int = NOW, signature: str | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Pipeline Hook",
        "Webhook-Id": DELIVERY,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature or _standard_signature(key, DELIVERY, timestamp, body),
    }


def test_gitlab_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The test vector published with the Standard Webhooks reference libraries.
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert verify_gitlab_signature([secret], b'{"test": 2432232314}', headers, now=1614265330) == 0
    assert verify_gitlab_signature([secret], b'{"test": 2432232315}', headers, now=1614265330) is None


def test_gitlab_signature_accepts_a_signed_fixture_with_any_header_case() -> None:
    body = load("gitlab_pipeline_success")
    headers = _signed_headers(body)
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW) == 0
    upper = {name.upper(): value for name, value in headers.items()}
    assert verify_gitlab_signature([TOKEN], body, upper, now=NOW + 10) == 0


def test_gitlab_signature_second_secret_and_several_signatures() -> None:
    body = load("gitlab_merge_request_merged")
    assert verify_gitlab_signature([OTHER_TOKEN, TOKEN], body, _signed_headers(body), now=NOW) == 1

    stale = _standard_signature(b"\x07" * 32, DELIVERY, NOW, body)
    both = f"{stale} {_standard_signature(KEY, DELIVERY, NOW, body)}"
    assert verify_gitlab_signature([TOKEN], body, _signed_headers(body, signature=both), now=NOW) == 0


def test_gitlab_signature_absent_when_unsigned() -> None:
    body = load("gitlab_pipeline_success")
    headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": "t", "Idempotency-Key": DELIVERY}
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW) == "absent"


def test_gitlab_signature_rejections() -> None:
    body = load("gitlab_pipeline_failed")
    headers = _signed_headers(body)

    assert verify_gitlab_signature([OTHER_TOKEN], body, headers, now=NOW) is None
    assert verify_gitlab_signature([TOKEN], body + b" ", headers, now=NOW) is None
    assert verify_gitlab_signature([], body, headers, now=NOW) is None
    for missing in ("Webhook-Id", "Webhook-Timestamp"):
        partial = {name: value for name, value in headers.items() if name != missing}
        assert verify_gitlab_signature([TOKEN], body, partial, now=NOW) is None
    garbled = {**headers, "Webhook-Signature": "v1,!!!not-base64"}
    assert verify_gitlab_signature([TOKEN], body, garbled, now=NOW) is None
    other_version = {**headers, "Webhook-Signature": headers["Webhook-Signature"].replace("v1,", "v1a,")}
    assert verify_gitlab_signature([TOKEN], body, other_version, now=NOW) is None
    for timestamp in ("soon", "\u00b2", "-1", "1.5e9"):
        odd = {**headers, "Webhook-Timestamp": timestamp}
        assert verify_gitlab_signature([TOKEN], body, odd, now=NOW) is None


def test_gitlab_signature_timestamp_tolerance_is_five_minutes_either_way() -> None:
    body = load("gitlab_pipeline_running")
    headers = _signed_headers(body)
    assert GITLAB_SIGNATURE_TOLERANCE_SECONDS == 300
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW + 300) == 0
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW - 300) == 0
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW + 301) is None
    assert verify_gitlab_signature([TOKEN], body, headers, now=NOW - 301) is None


def test_gitlab_signature_defaults_now_to_the_clock() -> None:
    body = load("gitlab_pipeline_running")
    assert verify_gitlab_signature([TOKEN], body, _signed_headers(body)) is None  # NOW is long past


def test_gitlab_signature_skips_a_malformed_token_but_checks_the_rest() -> None:
    body = load("gitlab_pipeline_success")
    assert verify_gitlab_signature(["whsec_***", TOKEN], body, _signed_headers(body), now=NOW) == 1


def test_gitlab_signing_token_decoding() -> None:
    assert decode_gitlab_signing_token(TOKEN) == KEY
    assert decode_gitlab_signing_token(TOKEN.removeprefix("whsec_")) == KEY
    for bad in ("whsec_***", "whsec_", ""):
        with pytest.raises(ValueError, match="signing token"):
            decode_gitlab_signing_token(bad)


def test_the_first_matching_secret_is_reported_when_one_is_listed_twice() -> None:
    body = load("gitlab_pipeline_success")
    assert verify_gitlab_signature([OTHER_TOKEN, TOKEN, TOKEN], body, _signed_headers(body), now=NOW) == 1
    assert verify_github_signature(["a", "b", "b"], body, _hub_signature("b", body)) == 1
    assert verify_gitlab_token(["a", "b", "b"], "b") == 1


@pytest.mark.parametrize(
    ("name", "check", "run_id", "attempt", "at"),
    [
        ("github_workflow_run_in_progress", "workflow_run:CI", 9876543210, 1, "2025-01-10T10:06:41Z"),
        ("github_workflow_run_completed_failure", "workflow_run:CI", 9876543210, 1, "2025-01-10T10:06:41Z"),
        (
            "github_check_run_in_progress",
            "check_run:23456789012:test (3.11)",
            27182818284,
            0,
            "2025-01-10T10:02:09Z",
        ),
        (
            "github_check_run_completed_failure",
            "check_run:23456789012:test (3.11)",
            27182818284,
            0,
            "2025-01-10T10:06:38Z",
        ),
        ("gitlab_pipeline_running", "pipeline:push", 1634567890, 0, "2025-01-10T10:02:43Z"),
        ("gitlab_pipeline_failed", "pipeline:push", 1634567890, 0, "2025-01-10T10:06:41Z"),
    ],
)
def test_a_ci_delivery_names_its_check_run_id_attempt_and_latest_time(
    name: str, check: str, run_id: int, attempt: int, at: str
) -> None:
    signal = parse(CASES[name][0], CASES[name][1], load(name))
    expected_ms = int(datetime.fromisoformat(at).timestamp() * 1000)
    assert (signal.ci_check, signal.ci_run_id, signal.ci_run_attempt, signal.ci_updated_at_ms) == (
        check,
        run_id,
        attempt,
        expected_ms,
    )


def test_times_without_a_zone_are_utc_and_unreadable_ones_are_ignored() -> None:
    data = load_json("github_workflow_run_in_progress")
    data["workflow_run"] |= {
        "created_at": "2025-01-10T10:00:00",
        "run_started_at": "soon",
        "updated_at": None,
    }
    signal = parse_github("workflow_run", json.dumps(data).encode())
    assert signal.ci_updated_at_ms == int(datetime(2025, 1, 10, 10, tzinfo=UTC).timestamp() * 1000)

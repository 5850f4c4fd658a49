"""GitHub's webhook dialect: a delivery (event header, raw body, content type) as a :class:`WebhookSignal`.

Pure: no I/O, so the API edge can parse before anything is recorded, and tests can feed recorded
deliveries byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final
from urllib.parse import parse_qs

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ReviewComment,
    ReviewFeedback,
    ReviewState,
)

from deksdenflow_api.webhooks.payload import (
    as_dict,
    as_int,
    as_str,
    branch_of,
    ci_position,
    ci_signal,
    completed_word,
    load_object,
    nested_object,
    protocol_run_id_of,
    review_signal,
    urls_of,
)
from deksdenflow_api.webhooks.signal import InvalidWebhook, WebhookSignal

__all__ = ["parse_github"]

_GITHUB_REPO_URLS: Final = ("clone_url", "ssh_url", "html_url", "git_url")
# A submitted review's state as GitHub's webhooks spell it (lower case; its REST API says APPROVED, ...).
_REVIEW_STATES: Final = {
    "approved": ReviewState.APPROVED,
    "changes_requested": ReviewState.CHANGES_REQUESTED,
    "commented": ReviewState.COMMENTED,
}


def parse_github(event: str, body: bytes, content_type: str = "") -> WebhookSignal:
    """A GitHub delivery (``X-GitHub-Event`` value, raw body and ``Content-Type``) as a
    :class:`WebhookSignal`.

    GitHub sends either JSON or, by default for a new hook, ``application/x-www-form-urlencoded`` with the
    JSON in the ``payload`` field; both read the same. (The signature covers the raw body as sent, so it is
    checked on ``body`` itself, never on the JSON taken out of it.)
    """
    event = event.strip()
    if not event:
        raise InvalidWebhook("github webhook has no X-GitHub-Event header", provider="github", event="")
    payload = load_object(_github_json(body, content_type, event), "github", event)
    repo = as_dict(payload.get("repository"))
    base = WebhookSignal(
        provider="github",
        event=event,
        action=as_str(payload.get("action")),
        repository=as_str(repo.get("full_name")),
        repository_urls=urls_of(repo, _GITHUB_REPO_URLS),
        protocol_run_id=protocol_run_id_of(payload),
    )
    match event:
        case "ping":
            return replace(base, kind="ping", ignored_reason="github ping: the hook is set up, nothing to do")
        case "workflow_run":
            return _github_workflow_run(base, payload)
        case "check_suite":
            return _github_check_suite(base, payload)
        case "check_run":
            return _github_check_run(base, payload)
        case "status":
            return _github_status(base, payload)
        case "pull_request":
            return _github_pull_request(base, payload)
        case "pull_request_review":
            return _github_review(base, payload)
        case "pull_request_review_comment":
            return _github_review_comment(base, payload)
        case _:
            return replace(base, kind="other", ignored_reason=f"github event {event!r} is not handled")


_FORM: Final = "application/x-www-form-urlencoded"


def _github_json(body: bytes, content_type: str, event: str) -> bytes:
    """The JSON of a delivery: the body itself, or the ``payload`` field of a form-encoded one."""
    if content_type.split(";", 1)[0].strip().lower() != _FORM:
        return body
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook(
            f"github form-encoded webhook body cannot be decoded: {exc}", provider="github", event=event
        ) from exc
    values = fields.get("payload", [])
    if len(values) != 1:
        raise InvalidWebhook(
            "github form-encoded webhook body must have exactly one 'payload' field",
            provider="github",
            event=event,
        )
    return values[0].encode()


def _github_workflow_run(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    run = nested_object(payload, "workflow_run", "github", base.event)
    name = as_str(run.get("name")) or as_str(as_dict(payload.get("workflow")).get("name"))
    times = ("created_at", "run_started_at", "updated_at")
    return ci_signal(
        base,
        raw=completed_word(run),
        branch=branch_of(as_str(run.get("head_branch"))),
        head_sha=as_str(run.get("head_sha")),
        run_url=as_str(run.get("html_url")),
        name=name,
        position=ci_position(
            f"workflow_run:{name or as_str(run.get('path'))}", run, times, as_int(run.get("run_attempt"))
        ),
    )


def _github_check_suite(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    suite = nested_object(payload, "check_suite", "github", base.event)
    raw = completed_word(suite, fallback=base.action)
    # A (re)requested suite is about to run, whatever status word (if any) it carries yet.
    requested = base.action in {"requested", "rerequested"} and as_str(suite.get("status")) != "completed"
    app = as_dict(suite.get("app"))
    name = as_str(app.get("name")) or "check_suite"
    # GitHub Actions makes one suite per workflow run, all of the same app: the suite's id tells one
    # workflow from another on the commit (and a re-run's results land in the same suite).
    check = (
        f"check_suite:{name}:{suite_id}" if (suite_id := as_int(suite.get("id"))) else f"check_suite:{name}"
    )
    return ci_signal(
        base,
        raw=raw,
        state="running" if requested else None,
        branch=branch_of(as_str(suite.get("head_branch"))),
        head_sha=as_str(suite.get("head_sha")),
        run_url=as_str(suite.get("html_url")),
        name=name,
        position=ci_position(check, suite, ("created_at", "updated_at")),
    )


def _github_check_run(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    run = nested_object(payload, "check_run", "github", base.event)
    suite = as_dict(run.get("check_suite"))
    name = as_str(run.get("name"))
    # Job names repeat across workflows ("test" in two of them): the check is the job of its suite.
    check = f"check_run:{suite_id}:{name}" if (suite_id := as_int(suite.get("id"))) else f"check_run:{name}"
    return ci_signal(
        base,
        raw=completed_word(run),
        branch=branch_of(as_str(suite.get("head_branch"))),
        head_sha=as_str(run.get("head_sha")) or as_str(suite.get("head_sha")),
        run_url=as_str(run.get("html_url")) or as_str(run.get("details_url")),
        name=name,
        position=ci_position(check, run, ("started_at", "completed_at")),
    )


def _github_status(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    for key in ("sha", "state"):
        if not isinstance(payload.get(key), str):
            raise InvalidWebhook(
                f"github 'status' delivery has no {key!r} string", provider="github", event=base.event
            )
    sha = as_str(payload.get("sha"))
    context = as_str(payload.get("context"))
    return ci_signal(
        base,
        raw=as_str(payload.get("state")),
        branch=_status_branch(payload.get("branches"), sha),
        head_sha=sha,
        run_url=as_str(payload.get("target_url")),
        name=context,
        position=ci_position(f"status:{context}", payload, ("created_at", "updated_at")),
    )


def _status_branch(branches: Any, sha: str) -> str:
    """The branch a commit status is about.

    GitHub lists up to ten branches *containing* the commit, not only those it heads. One branch is
    unambiguous; among several, only a branch whose tip is the commit counts, and only if exactly one is.
    """
    if not isinstance(branches, list):
        return ""
    entries = [entry for entry in branches if isinstance(entry, dict)]
    if len(entries) == 1:
        return as_str(entries[0].get("name"))
    heads = [entry for entry in entries if as_str(as_dict(entry.get("commit")).get("sha")) == sha]
    return as_str(heads[0].get("name")) if len(heads) == 1 else ""


def _github_pull_request(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    pr = nested_object(payload, "pull_request", "github", base.event)
    head = as_dict(pr.get("head"))
    closed = base.action == "closed"
    merged = closed and pr.get("merged") is True
    return replace(
        base,
        kind="pull_request",
        branch=branch_of(as_str(head.get("ref"))),
        head_sha=as_str(head.get("sha")),
        pr_number=as_int(payload.get("number")) or as_int(pr.get("number")),
        pr_url=as_str(pr.get("html_url")),
        pr_merged=merged,
        pr_closed=closed and not merged,
        # GitHub fills merge_commit_sha with a throw-away test merge while the PR is open; it only names
        # the commit on the base branch once the PR is merged.
        merge_commit_sha=as_str(pr.get("merge_commit_sha")) if merged else "",
        ignored_reason=""
        if closed
        else f"pull request action {base.action!r} is neither a merge nor a close",
    )


def _on_pull_request(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    """A review signal's pull request: its head branch (the run's name) and commit, number and page."""
    pr = nested_object(payload, "pull_request", "github", base.event)
    head = as_dict(pr.get("head"))
    return replace(
        base,
        kind="review",
        branch=branch_of(as_str(head.get("ref"))),
        head_sha=as_str(head.get("sha")),
        pr_number=as_int(pr.get("number")) or as_int(payload.get("number")),
        pr_url=as_str(pr.get("html_url")),
    )


def _github_review(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    """``pull_request_review``: a review submitted (approved, changes requested, commented) or dismissed.

    The review is the unit: its line comments are not in this payload (each also comes as a
    ``pull_request_review_comment`` delivery), so the git worker reads them from GitHub when it applies
    the review, and the review asks for one fix with all of them.
    """
    signal = _on_pull_request(base, payload)
    review = nested_object(payload, "review", "github", base.event)
    raw = as_str(review.get("state")).lower()
    state = ReviewState.DISMISSED if base.action == "dismissed" else None
    if base.action == "submitted":
        state = _REVIEW_STATES.get(raw)
    if state is None:
        reason = f"pull request review action {base.action!r} (state {raw!r}) is not acted on"
        return replace(signal, ignored_reason=reason)
    return review_signal(
        signal,
        ReviewFeedback(
            review_id=as_str(review.get("id")),
            reviewer=as_str(as_dict(review.get("user")).get("login")),
            state=state,
            body=as_str(review.get("body")),
            commit_sha=as_str(review.get("commit_id")),
            url=as_str(review.get("html_url")),
        ),
    )


def _github_review_comment(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    """``pull_request_review_comment``: a comment on a line of the diff.

    GitHub files every such comment under a review (a single comment too is a review of its own) and
    sends that review as ``pull_request_review``, which brings the comment along: applying the comment
    here as well would ask for a second fix of the same words. Only a comment under no review stands on
    its own, as a review whose id is the comment's.
    """
    signal = _on_pull_request(base, payload)
    comment = nested_object(payload, "comment", "github", base.event)
    if base.action != "created":
        return replace(signal, ignored_reason=f"review comment action {base.action!r} is not acted on")
    url = as_str(comment.get("html_url"))
    alone = review_signal(
        signal,
        ReviewFeedback(
            review_id=as_str(comment.get("id")),
            reviewer=as_str(as_dict(comment.get("user")).get("login")),
            state=ReviewState.COMMENTED,
            comments=(
                ReviewComment(
                    path=as_str(comment.get("path")),
                    line=as_int(comment.get("line")) or as_int(comment.get("original_line")),
                    body=as_str(comment.get("body")),
                    url=url,
                ),
            ),
            commit_sha=as_str(comment.get("commit_id")),
            url=url,
        ),
    )
    review_id = as_int(comment.get("pull_request_review_id"))
    if alone.review is None or not review_id:
        return alone  # deksdenflow's own words (ignored), or a comment under no review
    reason = (
        f"a comment of review {review_id}, which its pull_request_review delivery applies with all its "
        "comments"
    )
    return replace(alone, review=None, ignored_reason=reason)

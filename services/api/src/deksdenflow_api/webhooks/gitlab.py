"""GitLab's webhook dialect: a delivery (``X-Gitlab-Event`` value, raw body) as a :class:`WebhookSignal`.

Pure: no I/O, like the GitHub dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

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
    latest_millis,
    load_object,
    nested_object,
    protocol_run_id_of,
    review_signal,
    urls_of,
)
from deksdenflow_api.webhooks.signal import InvalidWebhook, WebhookSignal

__all__ = ["parse_gitlab"]

_GITLAB_REPO_URLS: Final = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")
# Merge Request Hook actions of approvals: a user's approval given or taken back ("approval",
# "unapproval"), and the merge request becoming approved or no longer approved ("approved", "unapproved").
_APPROVALS: Final = {
    "approval": ReviewState.APPROVED,
    "approved": ReviewState.APPROVED,
    "unapproval": ReviewState.DISMISSED,
    "unapproved": ReviewState.DISMISSED,
}


def _gitlab_kind_from_header(header: str) -> str:
    """``"Merge Request Hook"`` -> ``"merge_request"``: only used when the body names no object_kind."""
    words = header.strip().removesuffix(" Hook").strip()
    return "_".join(words.lower().split())


def parse_gitlab(event_header: str, body: bytes) -> WebhookSignal:
    """A GitLab delivery (``X-Gitlab-Event`` value and raw body) as a :class:`WebhookSignal`.

    The body's ``object_kind`` is the authority (the header is free text that has changed over versions,
    e.g. system hooks); the header only names the event when the body does not.
    """
    header_kind = _gitlab_kind_from_header(event_header)
    payload = load_object(body, "gitlab", header_kind)
    event = as_str(payload.get("object_kind")) or header_kind
    if not event:
        raise InvalidWebhook(
            "gitlab webhook names no event: no object_kind in the body and no X-Gitlab-Event header",
            provider="gitlab",
            event="",
        )
    project = as_dict(payload.get("project"))
    base = WebhookSignal(
        provider="gitlab",
        event=event,
        repository=as_str(project.get("path_with_namespace")),
        repository_urls=urls_of(project, _GITLAB_REPO_URLS),
        protocol_run_id=protocol_run_id_of(payload),
    )
    match event:
        case "pipeline":
            return _gitlab_pipeline(base, payload, project)
        case "merge_request":
            return _gitlab_merge_request(base, payload)
        case "note":
            return _gitlab_note(base, payload, project)
        case _:
            attributes = as_dict(payload.get("object_attributes"))
            return replace(
                base,
                action=as_str(attributes.get("action")),
                kind="other",
                ignored_reason=f"gitlab event {event!r} is not handled",
            )


def _gitlab_pipeline(
    base: WebhookSignal, payload: Mapping[str, Any], project: Mapping[str, Any]
) -> WebhookSignal:
    attributes = nested_object(payload, "object_attributes", "gitlab", base.event)
    tag = attributes.get("tag") is True
    ref = as_str(attributes.get("ref"))
    branch = "" if tag else branch_of(ref)
    merge_request = as_dict(payload.get("merge_request"))
    if not branch and not tag and merge_request:
        # Merge request pipelines run on refs/merge-requests/<iid>/head; the branch is the MR's source.
        branch = as_str(merge_request.get("source_branch"))
    pipeline_id = as_str(attributes.get("id"))
    run_url = as_str(attributes.get("url"))
    web_url = as_str(project.get("web_url"))
    if not run_url and web_url and pipeline_id:
        run_url = f"{web_url.rstrip('/')}/-/pipelines/{pipeline_id}"
    # A retried job turns a finished pipeline (same id) back to running: the jobs' own times tell that
    # report apart from a late one of the first try.
    jobs = [as_dict(job) for job in payload.get("builds") or () if isinstance(job, dict)]
    position = ci_position(
        f"pipeline:{as_str(attributes.get('name')) or as_str(attributes.get('source'))}",
        attributes,
        ("created_at", "finished_at"),
    )
    position["ci_updated_at_ms"] = max(
        position["ci_updated_at_ms"],
        latest_millis(job.get(key) for job in jobs for key in ("created_at", "started_at", "finished_at")),
    )
    signal = ci_signal(
        base,
        raw=as_str(attributes.get("status")),
        branch=branch,
        head_sha=as_str(attributes.get("sha")),
        run_url=run_url,
        name="pipeline",
        position=position,
    )
    if tag:
        return replace(signal, ignored_reason=f"tag pipeline (tag {ref!r}): only branches are followed")
    return signal


def _gitlab_merge_request(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    attributes = nested_object(payload, "object_attributes", "gitlab", base.event)
    action = as_str(attributes.get("action"))
    if action in _APPROVALS:
        return _gitlab_approval(base, payload, attributes, action)
    state = as_str(attributes.get("state"))
    merged = action == "merge" or state == "merged"
    closed = not merged and (action == "close" or state == "closed")
    return replace(
        base,
        action=action,
        kind="pull_request",
        branch=branch_of(as_str(attributes.get("source_branch"))),
        head_sha=as_str(as_dict(attributes.get("last_commit")).get("id")),
        pr_number=as_int(attributes.get("iid")),
        pr_url=as_str(attributes.get("url")),
        pr_merged=merged,
        pr_closed=closed,
        merge_commit_sha=as_str(attributes.get("merge_commit_sha")) if merged else "",
        ignored_reason=""
        if merged or closed
        else f"merge request action {action!r} (state {state!r}) is neither a merge nor a close",
    )


def _gitlab_approval(
    base: WebhookSignal, payload: Mapping[str, Any], attributes: Mapping[str, Any], action: str
) -> WebhookSignal:
    """An approval given (APPROVED) or taken back (DISMISSED) by the hook's user.

    GitLab gives an approval no id of its own, so the review has none: the delivery id alone tells one
    approval from the next (approve, revoke, approve again are three).
    """
    head = as_str(as_dict(attributes.get("last_commit")).get("id"))
    url = as_str(attributes.get("url"))
    signal = replace(
        base,
        action=action,
        branch=branch_of(as_str(attributes.get("source_branch"))),
        head_sha=head,
        pr_number=as_int(attributes.get("iid")),
        pr_url=url,
    )
    return review_signal(
        signal,
        ReviewFeedback(
            reviewer=as_str(as_dict(payload.get("user")).get("username")),
            state=_APPROVALS[action],
            commit_sha=head,
            url=url,
        ),
    )


def _gitlab_note(
    base: WebhookSignal, payload: Mapping[str, Any], project: Mapping[str, Any]
) -> WebhookSignal:
    """A Note Hook: a comment on the merge request (COMMENTED), on a line of its diff when the note has a
    position. Notes on issues, commits or snippets, system notes and edits are not reviews."""
    attributes = nested_object(payload, "object_attributes", "gitlab", base.event)
    action = as_str(attributes.get("action"))
    noteable = as_str(attributes.get("noteable_type"))
    if noteable != "MergeRequest":
        reason = f"a note on {noteable or 'something unnamed'}, not on a merge request"
        return replace(base, action=action, kind="other", ignored_reason=reason)
    mr = as_dict(payload.get("merge_request"))
    iid = as_int(mr.get("iid"))
    web_url = as_str(project.get("web_url")).rstrip("/")
    signal = replace(
        base,
        action=action,
        kind="review",
        branch=branch_of(as_str(mr.get("source_branch"))),
        head_sha=as_str(as_dict(mr.get("last_commit")).get("id")),
        pr_number=iid,
        pr_url=as_str(mr.get("url")) or (f"{web_url}/-/merge_requests/{iid}" if web_url and iid else ""),
    )
    if attributes.get("system") is True:
        return replace(signal, ignored_reason="a system note (GitLab's own record of a change)")
    if action not in ("", "create"):  # an older GitLab sends no action: its note hooks are creations
        return replace(signal, ignored_reason=f"note action {action!r} is not acted on")
    note, url = as_str(attributes.get("note")), as_str(attributes.get("url"))
    position = as_dict(attributes.get("position"))
    path = as_str(position.get("new_path")) or as_str(position.get("old_path"))
    feedback = ReviewFeedback(
        review_id=as_str(attributes.get("id")),
        reviewer=as_str(as_dict(payload.get("user")).get("username")),
        state=ReviewState.COMMENTED,
        commit_sha=as_str(position.get("head_sha")) or signal.head_sha,
        url=url,
    )
    if path:  # a diff note: the words belong to a line
        line = as_int(position.get("new_line")) or as_int(position.get("old_line"))
        comment = ReviewComment(path=path, line=line, body=note, url=url)
        return review_signal(signal, feedback.model_copy(update={"comments": (comment,)}))
    return review_signal(signal, feedback.model_copy(update={"body": note}))

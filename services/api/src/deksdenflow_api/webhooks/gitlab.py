"""GitLab's webhook dialect: a delivery (``X-Gitlab-Event`` value, raw body) as a :class:`WebhookSignal`.

Pure: no I/O, like the GitHub dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

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
    urls_of,
)
from deksdenflow_api.webhooks.signal import InvalidWebhook, WebhookSignal

__all__ = ["parse_gitlab"]

_GITLAB_REPO_URLS: Final = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")


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

"""GitHub and GitLab webhooks (and the CI callback, which speaks their dialects).

Authenticated only by the provider's own mechanism — GitHub's ``X-Hub-Signature-256`` HMAC of the raw
body, GitLab's ``X-Gitlab-Token`` (and its ``webhook-signature`` when sent) — with the global webhook
secret or the project's own; never by the API's bearer token, which providers cannot send.

A delivery is answered as soon as it is recorded: ``webhook.received`` on an aggregate of its own, whose
id derives from the provider's delivery id, so a redelivery finds it and appends nothing (durably, not
only within JetStream's duplicate window). Its effects on the run follow from the log: the git worker
applies it through the run's ``decide`` and records ``webhook.processed``. A delivery that matches no run
is recorded as ignored and answered 202, so providers never disable the hook.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import structlog
from deksdenflow_core.aggregates import PROJECT, WEBHOOK
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import webhook as wcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiProvider, CiRunRef, CiStatus
from deksdenflow_core.domain.webhook import webhook_id
from deksdenflow_core.eventstore import AppendMeta
from deksdenflow_core.webhooks import (
    InvalidWebhook,
    WebhookSignal,
    parse_github,
    parse_gitlab,
    verify_github_signature,
    verify_gitlab_signature,
    verify_gitlab_token,
)
from fastapi import APIRouter, Header, Request, Response

from deksdenflow_api import commanding
from deksdenflow_api.context import ApiContext, ContextDep
from deksdenflow_api.errors import HttpError, errors
from deksdenflow_api.reads import T, fetch_all
from deksdenflow_api.schemas import WebhookAccepted
from deksdenflow_api.webhook_secrets import project_webhook_secret

log = structlog.get_logger("deksdenflow.api.webhooks")
router = APIRouter(tags=["webhooks"])

_CI_STATUS = {"running": CiStatus.RUNNING, "success": CiStatus.SUCCESS, "failure": CiStatus.FAILURE}
_PROVIDER = {"github": CiProvider.GITHUB, "gitlab": CiProvider.GITLAB}


@dataclass(frozen=True)
class _Match:
    """The run a delivery applies to (or why none), and the projects whose secret may sign it: the owner
    of the matched run only; when no run matches (the delivery changes nothing), those of its repository."""

    protocol_run_id: str
    project_id: str
    ignored_reason: str
    projects: tuple[str, ...]


@router.post(
    "/webhooks/github",
    status_code=202,
    response_model=WebhookAccepted,
    responses=errors(401, 413, 422, 503),
)
async def github_webhook(
    request: Request,
    response: Response,
    ctx: ContextDep,
    x_github_event: Annotated[str | None, Header()] = None,
    x_github_delivery: Annotated[str | None, Header()] = None,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> WebhookAccepted:
    """A GitHub delivery (``workflow_run``, ``check_suite``, ``check_run``, ``status``, ``pull_request``,
    ``ping``), signed with ``X-Hub-Signature-256``. Answers 202 once recorded; 401 on a bad signature."""
    body = await _read_body(request, ctx.settings.webhook_max_body_bytes)

    def verify(secrets: Sequence[str]) -> bool:
        return verify_github_signature(secrets, body, x_hub_signature_256) is not None

    content_type = request.headers.get("content-type", "")
    signal, invalid = _parse(lambda: parse_github(x_github_event or "", body, content_type))
    match = await _match(ctx, signal)
    authenticated_by = await _authenticate(ctx, match, verify, "github")
    if signal is None:
        raise invalid or AssertionError("no signal and no error")
    delivery_id = x_github_delivery or "sha256:" + hashlib.sha256(body).hexdigest()
    return await _record(ctx, request, response, "github", delivery_id, signal, match, body, authenticated_by)


@router.post(
    "/webhooks/gitlab",
    status_code=202,
    response_model=WebhookAccepted,
    responses=errors(401, 413, 422, 503),
)
async def gitlab_webhook(
    request: Request,
    response: Response,
    ctx: ContextDep,
    x_gitlab_event: Annotated[str | None, Header()] = None,
    x_gitlab_token: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
    x_gitlab_event_uuid: Annotated[str | None, Header()] = None,
    x_gitlab_webhook_uuid: Annotated[str | None, Header()] = None,
) -> WebhookAccepted:
    """A GitLab delivery (Pipeline Hook, Merge Request Hook), authenticated by ``X-Gitlab-Token`` and, when
    GitLab signs it, by its ``webhook-signature``. Deduplicated by ``Idempotency-Key`` (GitLab 17.4+), else
    ``X-Gitlab-Event-UUID``, else the body's hash."""
    body = await _read_body(request, ctx.settings.webhook_max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}

    def verify(secrets: Sequence[str]) -> bool:
        if verify_gitlab_token(secrets, x_gitlab_token) is None:
            return False
        signed = verify_gitlab_signature(secrets, body, headers)
        return signed == "absent" or signed is not None

    signal, invalid = _parse(lambda: parse_gitlab(x_gitlab_event or "", body))
    match = await _match(ctx, signal)
    authenticated_by = await _authenticate(ctx, match, verify, "gitlab")
    if signal is None:
        raise invalid or AssertionError("no signal and no error")
    delivery_id = (
        idempotency_key
        or x_gitlab_event_uuid
        or "sha256:"
        + hashlib.sha256(body).hexdigest()
        + (f"@{x_gitlab_webhook_uuid}" if x_gitlab_webhook_uuid else "")
    )
    return await _record(ctx, request, response, "gitlab", delivery_id, signal, match, body, authenticated_by)


# --- steps -----------------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body (the signature covers its exact bytes), refused with 413 beyond ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, "payload_too_large", f"webhook bodies are limited to {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(
                413, "payload_too_large", f"webhook bodies are limited to {limit} bytes", limit=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(parse: Any) -> tuple[WebhookSignal | None, InvalidWebhook | None]:
    """Parse before authenticating (the payload names the run, and so the project whose secret may sign
    it), but keep the error of a malformed payload for an authenticated sender only."""
    try:
        signal: WebhookSignal = parse()
    except InvalidWebhook as exc:
        return None, exc
    return signal, None


async def _authenticate(ctx: ApiContext, match: _Match, verify: Any, provider: str) -> str:
    """``global`` or ``project`` (the secret that matched), else 401. Every candidate is compared in
    constant time."""
    globals_ = ctx.settings.webhook_tokens()
    if globals_ and verify(globals_):
        return "global"
    if globals_ and match.projects:
        repo = await ctx.repo()
        for project_id in match.projects:
            project = (await repo.load(PROJECT, project_id)).state
            if project.webhook_secret_generation <= 0:
                continue
            derived = [
                project_webhook_secret(m, project_id, project.webhook_secret_generation) for m in globals_
            ]
            if verify(derived):
                return "project"
    ctx.metrics.webhooks.labels(provider, "unauthorized").inc()
    reason = "invalid signature" if provider == "github" else "invalid token or signature"
    if not globals_:
        reason = "webhooks are not configured on this server (DEKSDENFLOW_WEBHOOK_TOKEN is not set)"
    raise HttpError(401, "unauthorized", reason)


async def _match(ctx: ApiContext, signal: WebhookSignal | None) -> _Match:
    """The run: the explicit ``protocol_run_id``, else the protocol whose name is the branch (narrowed to
    the repository's project when several projects have one of that name)."""
    if signal is None:
        return _Match("", "", "", ())
    if signal.protocol_run_id:
        rows = await fetch_all(
            ctx, f"SELECT id, project_id FROM {T}.protocol_runs WHERE id = $1", signal.protocol_run_id
        )
        if not rows:
            return _Match(
                "", "", f"no protocol run {signal.protocol_run_id}", await _projects_of(ctx, signal)
            )
        return _Match(rows[0]["id"], rows[0]["project_id"], "", (rows[0]["project_id"],))
    projects = await _projects_of(ctx, signal)
    if signal.ignored_reason:
        return _Match("", projects[0] if len(projects) == 1 else "", signal.ignored_reason, projects)
    if not signal.branch:
        return _Match("", "", "the payload names no branch", projects)
    rows = await fetch_all(
        ctx, f"SELECT id, project_id FROM {T}.protocol_runs WHERE protocol_name = $1", signal.branch
    )
    if len(rows) > 1 and projects:
        rows = [r for r in rows if r["project_id"] in projects] or rows
    if len(rows) == 1:
        # Only the owner of the matched run may sign for it: the repository the payload names is the
        # sender's word, so a project's secret naming its own repository and another's branch is refused.
        project_id = rows[0]["project_id"]
        return _Match(rows[0]["id"], project_id, "", (project_id,))
    if not rows:
        reason = f"no protocol run is named {signal.branch!r}"
        return _Match("", projects[0] if len(projects) == 1 else "", reason, projects)
    reason = (
        f"{len(rows)} protocol runs in different projects are named {signal.branch!r}; send protocol_run_id "
        "or the repository"
    )
    return _Match("", "", reason, tuple(dict.fromkeys(r["project_id"] for r in rows)))


async def _projects_of(ctx: ApiContext, signal: WebhookSignal) -> tuple[str, ...]:
    """Projects whose repository is the payload's (by forge path or URL)."""
    wanted = {_repo_key(signal.repository)} | {_repo_key(u) for u in signal.repository_urls}
    wanted.discard("")
    if not wanted:
        return ()
    rows = await fetch_all(ctx, f"SELECT id, git_url, state->>'forge_repo' AS forge_repo FROM {T}.projects")
    return tuple(
        r["id"] for r in rows if {_repo_key(r["git_url"]), _repo_key(r["forge_repo"] or "")} & wanted
    )


def _repo_key(url_or_path: str) -> str:
    """``https://github.com/Acme/Demo.git``, ``git@github.com:acme/demo``, ``acme/demo`` → ``acme/demo``."""
    text = url_or_path.strip()
    if not text:
        return ""
    if "://" in text:
        text = urlsplit(text).path
    elif "@" in text and ":" in text:  # scp-like git@host:owner/repo
        text = text.split(":", 1)[1]
    return text.strip("/").removesuffix(".git").lower()


def _ci_run(signal: WebhookSignal) -> CiRunRef | None:
    """The CI run a CI delivery is about, so that the run can put its reports in order."""
    if signal.kind != "ci" or not signal.ci_check:
        return None
    return CiRunRef(
        check=signal.ci_check,
        run_id=signal.ci_run_id,
        attempt=signal.ci_run_attempt,
        updated_at_ms=signal.ci_updated_at_ms,
    )


async def _record(
    ctx: ApiContext,
    request: Request,
    response: Response,
    provider: Literal["github", "gitlab"],
    delivery_id: str,
    signal: WebhookSignal,
    match: _Match,
    body: bytes,
    authenticated_by: str,
) -> WebhookAccepted:
    kind = _PROVIDER[provider]
    wid = webhook_id(kind, delivery_id)
    command = wcmd.ReceiveWebhook(
        provider=kind,
        delivery_id=delivery_id,
        event=signal.event,
        action=signal.action,
        kind=signal.kind,
        repository=signal.repository,
        branch=signal.branch,
        head_sha=signal.head_sha,
        ci_status=_CI_STATUS.get(signal.ci_state or "", CiStatus.UNSPECIFIED),
        raw_status=signal.raw_status,
        run_url=signal.run_url,
        ci_name=signal.ci_name,
        pr_number=signal.pr_number,
        pr_url=signal.pr_url,
        pr_merged=signal.pr_merged,
        pr_closed=signal.pr_closed,
        merge_commit_sha=signal.merge_commit_sha,
        protocol_run_id=match.protocol_run_id,
        project_id=match.project_id,
        ignored_reason=match.ignored_reason,
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_bytes=len(body),
        authenticated_by=authenticated_by,
        ci_run=_ci_run(signal),
    )
    request_id: str = request.state.request_id
    meta = AppendMeta(
        source=commanding.SOURCE,
        actor=f"webhook:{provider}",
        correlation_id=match.protocol_run_id or wid,
        causation_id=request_id,
        traceparent=request.headers.get("traceparent", ""),
    )
    repo = await ctx.repo()
    outcome = await repo.execute(WEBHOOK, wid, command, meta, redecide=2)
    commanding.record(ctx, response, WEBHOOK.aggregate_type, outcome)
    duplicate = not outcome.appended.events
    received = outcome.state.received
    status: Literal["accepted", "ignored", "duplicate"]
    if duplicate:
        status = "duplicate"
    elif match.ignored_reason:
        status = "ignored"
    else:
        status = "accepted"
    ctx.metrics.webhooks.labels(provider, status).inc()
    log.info(
        "webhook",
        provider=provider,
        delivery_id=delivery_id,
        status=status,
        provider_event=signal.event,
        protocol_run_id=match.protocol_run_id or None,
        reason=match.ignored_reason or None,
    )
    run_id = received.protocol_run_id if received else match.protocol_run_id
    reason = received.ignored_reason if received else match.ignored_reason
    return WebhookAccepted(
        status=status,
        delivery_id=delivery_id,
        webhook_id=wid,
        protocol_run_id=run_id or None,
        reason=reason or None,
        event_sequence=outcome.appended.last_seq,
    )

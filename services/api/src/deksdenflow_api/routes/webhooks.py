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
from typing import Annotated, Any, Literal

import structlog
from deksdenflow_core.aggregates import WEBHOOK
from deksdenflow_core.domain.provider import ProviderName
from deksdenflow_core.domain.webhook import webhook_id
from deksdenflow_core.eventstore import AppendMeta
from fastapi import APIRouter, Header, Request, Response

from deksdenflow_api import commanding
from deksdenflow_api.context import ApiContext, ContextDep
from deksdenflow_api.errors import HttpError, errors
from deksdenflow_api.schemas import WebhookAccepted
from deksdenflow_api.webhooks import (
    InvalidWebhook,
    Match,
    WebhookSignal,
    parse_github,
    parse_gitlab,
    verify_github_signature,
    verify_gitlab_signature,
    verify_gitlab_token,
)
from deksdenflow_api.webhooks.authentication import authenticate
from deksdenflow_api.webhooks.matching import match_run
from deksdenflow_api.webhooks.recording import receive_command

log = structlog.get_logger("deksdenflow.api.webhooks")
router = APIRouter(tags=["webhooks"])


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
    ``pull_request_review``, ``pull_request_review_comment``, ``ping``), signed with
    ``X-Hub-Signature-256``. Answers 202 once recorded; 401 on a bad signature."""
    body = await _read_body(ctx, request, "github")

    def verify(secrets: Sequence[str]) -> bool:
        return verify_github_signature(secrets, body, x_hub_signature_256) is not None

    content_type = request.headers.get("content-type", "")
    signal, invalid = _parse(lambda: parse_github(x_github_event or "", body, content_type))
    match = await match_run(ctx, signal)
    authenticated_by = await authenticate(ctx, match, verify, "github")
    if signal is None:
        ctx.metrics.webhooks.labels("github", "invalid").inc()
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
    """A GitLab delivery (Pipeline Hook, Merge Request Hook, Note Hook), authenticated by ``X-Gitlab-Token``
    and, when GitLab signs it, by its ``webhook-signature``. Deduplicated by ``Idempotency-Key`` (GitLab
    17.4+), else ``X-Gitlab-Event-UUID``, else the body's hash."""
    body = await _read_body(ctx, request, "gitlab")
    headers = {k.lower(): v for k, v in request.headers.items()}

    def verify(secrets: Sequence[str]) -> bool:
        if verify_gitlab_token(secrets, x_gitlab_token) is None:
            return False
        signed = verify_gitlab_signature(secrets, body, headers)
        return signed == "absent" or signed is not None

    signal, invalid = _parse(lambda: parse_gitlab(x_gitlab_event or "", body))
    match = await match_run(ctx, signal)
    authenticated_by = await authenticate(ctx, match, verify, "gitlab")
    if signal is None:
        ctx.metrics.webhooks.labels("gitlab", "invalid").inc()
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


async def _read_body(ctx: ApiContext, request: Request, provider: ProviderName) -> bytes:
    """The raw body (the signature covers its exact bytes), refused with 413 beyond the limit."""
    limit = ctx.settings.webhook_max_body_bytes
    declared = request.headers.get("content-length")
    too_large = HttpError(
        413, "payload_too_large", f"webhook bodies are limited to {limit} bytes", limit=limit
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        ctx.metrics.webhooks.labels(provider, "too_large").inc()
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            ctx.metrics.webhooks.labels(provider, "too_large").inc()
            raise too_large
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


async def _record(
    ctx: ApiContext,
    request: Request,
    response: Response,
    provider: ProviderName,
    delivery_id: str,
    signal: WebhookSignal,
    match: Match,
    body: bytes,
    authenticated_by: str,
) -> WebhookAccepted:
    command = receive_command(provider, delivery_id, signal, match, body, authenticated_by)
    wid = webhook_id(command.provider, delivery_id)
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

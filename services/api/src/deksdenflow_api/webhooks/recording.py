"""The command that records a webhook delivery: what the forge said, the run it matched, how it was
authenticated (pure)."""

from __future__ import annotations

import hashlib

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import webhook as wcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiRunRef
from deksdenflow_core.domain.provider import ProviderName, ci_provider, ci_status

from deksdenflow_api.webhooks.signal import Match, WebhookSignal

__all__ = ["receive_command"]


def receive_command(
    provider: ProviderName,
    delivery_id: str,
    signal: WebhookSignal,
    match: Match,
    body: bytes,
    authenticated_by: str,
) -> wcmd.ReceiveWebhook:
    """``webhook.received`` as the route records it; the body itself is kept only as its hash and size."""
    return wcmd.ReceiveWebhook(
        provider=ci_provider(provider),
        delivery_id=delivery_id,
        event=signal.event,
        action=signal.action,
        kind=signal.kind,
        repository=signal.repository,
        branch=signal.branch,
        head_sha=signal.head_sha,
        ci_status=ci_status(signal.ci_state),
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
        review=signal.review,
    )


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

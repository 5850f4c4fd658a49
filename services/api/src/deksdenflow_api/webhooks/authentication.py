"""Which secret signed a webhook delivery: the global one, else the project's own (derived from it)."""

from __future__ import annotations

from typing import Any

from deksdenflow_core.aggregates import PROJECT
from deksdenflow_core.domain.provider import ProviderName

from deksdenflow_api.context import ApiContext
from deksdenflow_api.errors import HttpError
from deksdenflow_api.webhook_secrets import project_webhook_secret
from deksdenflow_api.webhooks.signal import Match

__all__ = ["authenticate"]


async def authenticate(ctx: ApiContext, match: Match, verify: Any, provider: ProviderName) -> str:
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

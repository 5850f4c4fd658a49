"""Why a project or run is not moving, in one line: its status reason, the job that failed and will be
tried again — which try, after what error, and when the next comes — and what a spec audit found wrong
with its plan. Shown as the ``why`` column (and ``--field why``); the API gives the parts as
``status_reason``/``blocked_reason``, ``retry`` and ``spec_findings``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def why(item: dict[str, Any], now: datetime | None = None) -> str | None:
    parts: list[str] = []
    reason = item.get("status_reason") or item.get("blocked_reason")
    if reason:
        parts.append(str(reason))
    if findings := item.get("spec_findings"):
        parts.append("the plan breaks the spec rules: " + "; ".join(map(str, findings)))
    retry = item.get("retry")
    if isinstance(retry, dict):
        parts.append(retrying(retry, now or datetime.now(UTC)))
    return "; ".join(parts) or None


def retrying(retry: dict[str, Any], now: datetime) -> str:
    job = str(retry.get("job", "")).split(".")[-1].removesuffix("_requested").replace("_", " ")
    tries = f"try {int(retry.get('delivery', 0))} of {int(retry.get('max_deliveries', 0))} failed"
    return f"{job or 'a job'} retrying ({tries}: {retry.get('error', '')}), {_next(retry, now)}"


def _next(retry: dict[str, Any], now: datetime) -> str:
    try:
        at = datetime.fromisoformat(str(retry["next_try_at"]))
    except (KeyError, ValueError):
        return "next try soon"
    seconds = (at - now).total_seconds()
    when = at.astimezone().strftime("%H:%M:%S")
    if seconds <= 0:
        return f"next try due since {when}"
    return f"next try at {when} (in {_span(seconds)})"


def _span(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{max(s, 1)}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"

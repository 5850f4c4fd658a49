"""Reading a forge's JSON payload without trusting its shape: the helpers both dialects share (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import ReviewFeedback
from deksdenflow_core.domain.provider import CiResult, ProviderName
from deksdenflow_core.domain.review_reply import is_review_reply

from deksdenflow_api.webhooks.signal import InvalidWebhook, WebhookSignal, normalise_ci_state


def load_object(body: bytes, provider: ProviderName, event: str) -> dict[str, Any]:
    """The body as a JSON object, or InvalidWebhook naming what is wrong with it."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidWebhook(
            f"{provider} webhook body is not valid JSON: {exc}", provider=provider, event=event
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidWebhook(
            f"{provider} webhook body must be a JSON object, got {type(payload).__name__}",
            provider=provider,
            event=event,
        )
    return payload


def nested_object(payload: Mapping[str, Any], key: str, provider: ProviderName, event: str) -> dict[str, Any]:
    """The nested object ``key`` an event is about; InvalidWebhook when it is missing."""
    value = payload.get(key)
    if not isinstance(value, dict):
        raise InvalidWebhook(
            f"{provider} {event!r} delivery has no {key!r} object", provider=provider, event=event
        )
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: optional nested blocks read like present ones."""
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    """Strings as they are; numbers as text (ids); null and anything else as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return 0


def latest_millis(values: Iterable[Any]) -> int:
    """The latest of the timestamps given, in ms since the epoch; 0 when none can be read.

    GitHub writes ISO 8601 (``2025-01-10T10:02:03Z``), GitLab ``2025-01-10 10:02:03 UTC`` or ISO 8601
    with an offset; a time without a zone is taken as UTC.
    """
    latest = 0
    for value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        text = value.strip()
        if text.endswith(" UTC"):
            text = text.removesuffix(" UTC") + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        latest = max(latest, int(moment.timestamp() * 1000))
    return latest


def ci_position(
    check: str, block: Mapping[str, Any], times: Sequence[str], attempt: int = 0
) -> dict[str, Any]:
    """The CI run fields of a signal: its check, the block's id, ``attempt`` and its latest time."""
    return {
        "ci_check": check,
        "ci_run_id": as_int(block.get("id")),
        "ci_run_attempt": attempt,
        "ci_updated_at_ms": latest_millis(block.get(key) for key in times),
    }


def branch_of(ref: str) -> str:
    """A branch name from a ref: ``refs/heads/`` stripped; tags and other refs are not branches ("")."""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if ref.startswith("refs/"):
        return ""
    return ref


def urls_of(block: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for key in keys:
        url = as_str(block.get(key))
        if url:
            seen[url] = None
    return tuple(seen)


def protocol_run_id_of(payload: Mapping[str, Any]) -> str:
    value = payload.get("protocol_run_id")
    return value if isinstance(value, str) else ""


def ci_ignored(state: CiResult | None, raw: str) -> str:
    return "" if state is not None else f"CI state {raw!r} is not acted on"


def completed_word(block: Mapping[str, Any], fallback: str = "") -> str:
    """GitHub's own word for a run: the conclusion once completed, else the status (or ``fallback``)."""
    status = as_str(block.get("status"))
    conclusion = as_str(block.get("conclusion"))
    if status == "completed" and conclusion:
        return conclusion
    return status or fallback


def ci_signal(
    base: WebhookSignal,
    *,
    raw: str,
    branch: str,
    head_sha: str,
    run_url: str,
    name: str,
    state: CiResult | None = None,
    position: Mapping[str, Any] | None = None,
) -> WebhookSignal:
    state = state or normalise_ci_state(raw)
    return replace(
        base,
        **(position or {}),
        kind="ci",
        ci_state=state,
        raw_status=raw,
        branch=branch,
        head_sha=head_sha,
        run_url=run_url,
        ci_name=name,
        ignored_reason=ci_ignored(state, raw),
    )


def review_signal(base: WebhookSignal, feedback: ReviewFeedback) -> WebhookSignal:
    """A "review" signal saying ``feedback`` — unless it is deksdenflow's own reply to a review coming back
    from the forge, which is ignored: taken as a reviewer's comment, it would ask for a fix of the fix."""
    if any(is_review_reply(text) for text in (feedback.body, *(c.body for c in feedback.comments))):
        return replace(
            base,
            kind="review",
            ignored_reason="deksdenflow's own reply to a review (it carries the reply marker)",
        )
    return replace(base, kind="review", review=feedback)

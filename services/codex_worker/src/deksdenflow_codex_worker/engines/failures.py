"""Telling apart why an agent CLI failed: the model service, our configuration, or the turn itself.

The CLIs report all three the same way (a failed turn with a message), but the worker must act
differently: retry later when the model service was unreachable or overloaded, stop and say so when the
credentials or the setup are wrong (every try would fail the same), and count a failed attempt of the
step otherwise (the model could not do the task, the context was too long...).
"""

from __future__ import annotations

import re
from enum import StrEnum


class Failure(StrEnum):
    TRANSIENT = "transient"  # the model service or the network; a later try may succeed
    SETUP = "setup"  # credentials, quota, missing configuration; no try can succeed until fixed
    TURN = "turn"  # the agent's turn failed; a failed attempt of the step


_TRANSIENT = re.compile(
    r"stream disconnected|connection (failed|refused|reset|closed|error)|error sending request|ECONNREFUSED"
    r"|ECONNRESET|ETIMEDOUT|socket hang up|timed? ?out|high demand|overloaded|exceeded retry limit"
    r"|rate limit|too many requests|service unavailable|bad gateway|server[- ]side issue"
    r"|\b(429|500|502|503|504|529)\b",
    re.IGNORECASE,
)
_SETUP = re.compile(
    r"\b(401|403)\b|unauthori[sz]ed|forbidden|authenticat|invalid (x-)?api.key|missing environment variable"
    r"|quota exceeded|insufficient.quota|billing|credit balance",
    re.IGNORECASE,
)


def classify(message: str, status: int | None = None) -> Failure:
    """Classify a failure from its message and, when the CLI reports one, its HTTP status."""
    if status is not None:
        if status in (401, 403):
            return Failure.SETUP
        if status in (408, 429) or status >= 500:
            return Failure.TRANSIENT
    if _SETUP.search(message):
        return Failure.SETUP
    if _TRANSIENT.search(message):
        return Failure.TRANSIENT
    return Failure.TURN


class FallbackReason(StrEnum):
    """Errors on which an agent call moves on to the next engine and model of its fallback chain: the
    engine or model is limited or down, and another may answer. Never a QA FAIL, an output that does not
    validate, or a failed turn of the task itself."""

    USAGE_LIMIT = "usage_limit"  # the account's usage, quota or credits are spent (the CLIs say so)
    RATE_LIMIT = "rate_limit"
    CONTEXT_WINDOW = "context_window"  # the prompt does not fit the model
    PROVIDER_ERROR = "provider_error"  # 5xx, overloaded
    TIMEOUT = "timeout"


# Checked in this order: a usage limit often comes as a 429 too, and says more; an idle stream is a
# timeout before it is a broken stream. The messages are the CLIs' own (observed with the pinned Codex CLI
# against the fake Responses API: tests/workers/test_fallbacks_codex.py).
_FALLBACKS: tuple[tuple[FallbackReason, re.Pattern[str]], ...] = (
    (
        FallbackReason.USAGE_LIMIT,
        re.compile(
            r"usage limit|hit your (usage )?limit|quota|insufficient.quota|credit balance|out of credits"
            r"|billing (hard )?limit|usage_limit|purchase more credits|usage_not_included"
            r"|with your ChatGPT plan, upgrade|out of extra usage|\b\d+-hour limit reached",
            re.IGNORECASE,
        ),
    ),
    (
        FallbackReason.CONTEXT_WINDOW,
        re.compile(
            r"context.window|context_length_exceeded|maximum context length|prompt is too long"
            r"|too many (input )?tokens|input is too long|exceeds the context",
            re.IGNORECASE,
        ),
    ),
    (FallbackReason.RATE_LIMIT, re.compile(r"rate.limit|too many requests|\b429\b", re.IGNORECASE)),
    (
        FallbackReason.TIMEOUT,
        re.compile(r"timed? ?out|timeout|ETIMEDOUT|did not finish within", re.IGNORECASE),
    ),
    (
        FallbackReason.PROVIDER_ERROR,
        re.compile(
            r"\b(500|502|503|504|529)\b|overloaded|service unavailable|bad gateway|internal server error"
            r"|server_error|high demand|server had an error|stream disconnected before completion",
            re.IGNORECASE,
        ),
    ),
)


def fallback_reason(message: str) -> FallbackReason | None:
    """Why another engine or model should take the call, or None when none should."""
    for reason, pattern in _FALLBACKS:
        if pattern.search(message):
            return reason
    return None

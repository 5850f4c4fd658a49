"""Which failures of the real agent CLIs move an agent call down its fallback chain: the fake model APIs
answer as a limited or broken provider does (429s, a usage limit, the context window, 5xx, a broken or
idle stream), and the error the engine reports — in the CLI's own words — is classified as the agent-call
layer classifies it (``agent_calls._switch_on``). An invalid answer or a QA FAIL is an answer, never a
reason to switch. The Codex CLI in full; Claude Code for its own wording of the three limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deksdenflow_codex_worker.engines.base import EngineError, Progress
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_codex_worker.engines.failures import FallbackReason, fallback_reason
from deksdenflow_core.jobs import failure_reason
from deksdenflow_fakes import anthropic_api as anthropic
from deksdenflow_fakes.anthropic_api import FakeAnthropicApi
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    codex_provider_args,
    codex_provider_env,
)

from tests.engines.helpers import make_call
from tests.workers.scripts import PASS

CASES = {
    "429 rate limit": (
        Turn.http_error(429, "Rate limit reached for gpt-5.5 on tokens per min (TPM)"),
        FallbackReason.RATE_LIMIT,
        "exceeded retry limit, last status: 429",
    ),
    "429 usage limit": (
        Turn.http_error(429, "The usage limit has been reached", error_type="usage_limit_reached"),
        FallbackReason.USAGE_LIMIT,
        "hit your usage limit",
    ),
    "plan without codex usage": (
        Turn.http_error(429, "Usage not included in your plan", error_type="usage_not_included"),
        FallbackReason.USAGE_LIMIT,
        "upgrade to Plus",
    ),
    "quota": (
        Turn.failed("You exceeded your current quota", code="insufficient_quota"),
        FallbackReason.USAGE_LIMIT,
        "Quota exceeded",
    ),
    "context window": (
        Turn.failed("Your input exceeds the context window of this model.", code="context_length_exceeded"),
        FallbackReason.CONTEXT_WINDOW,
        "ran out of room in the model's context window",
    ),
    "streamed rate limit": (
        Turn.failed("Rate limit reached for gpt-5.5", code="rate_limit_exceeded"),
        FallbackReason.RATE_LIMIT,
        "rate limit exceeded",
    ),
    "500": (Turn.http_error(500, "internal"), FallbackReason.PROVIDER_ERROR, "high demand"),
    "503": (Turn.http_error(503, "Service Unavailable"), FallbackReason.PROVIDER_ERROR, "503"),
    "stream failed": (
        Turn.failed("The server had an error while processing your request"),
        FallbackReason.PROVIDER_ERROR,
        "stream disconnected before completion",
    ),
}


async def _quiet(progress: Progress) -> None:
    return None


async def _error_of(
    engine: CodexEngine | ClaudeCodeEngine, workdir: Path, model: str = CODEX_TEST_MODEL
) -> str:
    """What the engine says went wrong, as the agent-call layer reads it (a failed turn's error or an
    engine error's reason)."""
    try:
        result = await engine.run(make_call(workdir, "Do the step.", model=model), _quiet)
    except EngineError as exc:
        return failure_reason(exc)
    assert not result.ok, "the call was expected to fail"
    return result.error


@pytest.mark.parametrize("name", list(CASES))
async def test_a_limited_or_failing_provider_is_a_reason_to_fall_back(
    name: str, codex: CodexEngine, responses_api: FakeResponsesApi, tmp_path: Path
) -> None:
    turn, reason, said = CASES[name]
    responses_api.push(turn)
    error = await _error_of(codex, tmp_path)
    assert said.lower() in error.lower(), error  # the CLI's own words
    assert fallback_reason(error) is reason, error


async def test_an_idle_stream_is_a_timeout(
    codex_bin: str, codex_home_root: Path, responses_api: FakeResponsesApi, tmp_path: Path
) -> None:
    args = [
        a.replace("stream_idle_timeout_ms=15000", "stream_idle_timeout_ms=300")
        for a in codex_provider_args(responses_api)
    ]
    idle = CodexEngine(
        codex_bin, codex_home_root=codex_home_root, extra_args=args, env=codex_provider_env(responses_api)
    )
    responses_api.push(Turn.message("too late").held(30))
    error = await _error_of(idle, tmp_path)
    assert "idle timeout" in error
    assert fallback_reason(error) is FallbackReason.TIMEOUT


async def test_an_invalid_answer_or_a_qa_fail_is_no_reason_to_fall_back(
    codex: CodexEngine, responses_api: FakeResponsesApi, tmp_path: Path
) -> None:
    fail = {**PASS, "verdict": "FAIL", "findings": {"blocking": ["no test"], "warnings": [], "notes": []}}
    responses_api.push(Turn.message("Looks fine to me!"), Turn.message(json.dumps(fail)))
    for _ in range(2):
        result = await codex.run(make_call(tmp_path, "Judge the step.", model=CODEX_TEST_MODEL), _quiet)
        # An answer: the call's layer checks it (re-asks, or records the FAIL), it never switches on it.
        assert (result.ok, result.error) == (True, "")
    responses_api.push(Turn.http_error(401, "Incorrect API key provided"))
    assert fallback_reason(await _error_of(codex, tmp_path)) is None  # the setup, not the provider


CLAUDE_CASES = {
    "429 rate limit": (
        anthropic.Turn.http_error(429, "Number of request tokens has exceeded your per-minute rate limit"),
        FallbackReason.RATE_LIMIT,
        "Request rejected (429)",
    ),
    "credit balance": (
        anthropic.Turn.http_error(400, "Your credit balance is too low to access the Anthropic API."),
        FallbackReason.USAGE_LIMIT,
        "Credit balance is too low",
    ),
    "prompt too long": (
        anthropic.Turn.http_error(400, "prompt is too long: 210000 tokens > 200000 maximum"),
        FallbackReason.CONTEXT_WINDOW,
        "Prompt is too long",
    ),
}


@pytest.mark.parametrize("name", list(CLAUDE_CASES))
async def test_claude_codes_own_words_for_the_limits_are_reasons_to_fall_back(
    name: str, claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, tmp_path: Path
) -> None:
    turn, reason, said = CLAUDE_CASES[name]
    anthropic_api.push(turn)
    error = await _error_of(claude, tmp_path, "claude-sonnet-4-5")
    assert said in error, error
    assert fallback_reason(error) is reason, error

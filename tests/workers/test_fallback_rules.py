"""Which errors move an agent call to the next engine and model of its chain, and how a limited one
cools down: pure rules, no process."""

from __future__ import annotations

import pytest
from deksdenflow_codex_worker.engines.failures import FallbackReason, fallback_reason
from deksdenflow_codex_worker.fallbacks import Choice, Cooldowns, chain
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import FallbackChains
from deksdenflow_core.domain.project import decide_project, evolve_project
from deksdenflow_core.errors import InvalidCommand

from tests.domain.builders import ctx, registered_project


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("You've hit your usage limit. Upgrade to Pro or try again in 3 days.", FallbackReason.USAGE_LIMIT),
        ("insufficient_quota: You exceeded your current quota", FallbackReason.USAGE_LIMIT),
        ("Your credit balance is too low to access the Anthropic API", FallbackReason.USAGE_LIMIT),
        ("exceeded retry limit, last status: 429 Too Many Requests", FallbackReason.RATE_LIMIT),
        ("Rate limit reached for gpt-5 in organization", FallbackReason.RATE_LIMIT),
        ("context_length_exceeded: Your input exceeds the context window", FallbackReason.CONTEXT_WINDOW),
        ("prompt is too long: 210000 tokens > 200000 maximum", FallbackReason.CONTEXT_WINDOW),
        ("unexpected status 503 Service Unavailable", FallbackReason.PROVIDER_ERROR),
        ("Overloaded", FallbackReason.PROVIDER_ERROR),
        ("the agent timed out after 3600 s", FallbackReason.TIMEOUT),
    ],
)
def test_limits_and_outages_are_classified(message: str, reason: FallbackReason) -> None:
    assert fallback_reason(message) is reason


@pytest.mark.parametrize(
    "message",
    [
        "QA verdict FAIL: docs are missing",
        "invalid plan output: expected JSON",
        "the agent failed: tests do not pass",
        "401 Unauthorized: Incorrect API key provided",
    ],
)
def test_a_failure_of_the_task_or_of_the_setup_takes_no_fallback(message: str) -> None:
    assert fallback_reason(message) is None


def test_a_chain_is_the_phases_own_choice_then_its_known_entries_once() -> None:
    known = {"codex", "claude-code"}.__contains__
    got = chain(Choice("codex", "gpt-5"), ["codex:gpt-5", "claude-code:sonnet", "nope:x", "codex"], known)
    assert got == [Choice("codex", "gpt-5"), Choice("claude-code", "sonnet"), Choice("codex", "")]
    assert [str(c) for c in got] == ["codex:gpt-5", "claude-code:sonnet", "codex"]


def test_a_choice_left_cools_down_and_comes_back_after() -> None:
    now = [1000.0]
    cooldowns = Cooldowns(300, clock=lambda: now[0])
    limited, other = Choice("codex", "gpt-5"), Choice("claude-code", "sonnet")
    assert cooldowns.start(limited) == 1300.0
    assert cooldowns.usable([limited, other]) == [other]
    assert cooldowns.usable([limited]) == [limited]  # every one cooling: a call is still made
    now[0] = 1300.0
    assert cooldowns.usable([limited, other]) == [limited, other]


def test_a_projects_fallbacks_are_checked_and_recorded() -> None:
    project = registered_project()
    chains = FallbackChains(exec=["claude-code:claude-sonnet-4-5", "codex"])
    for e in decide_project(project, pcmd.SetFallbacks(fallbacks=chains), ctx()):
        project = evolve_project(project, e)
    assert project.fallbacks == chains
    assert decide_project(project, pcmd.SetFallbacks(fallbacks=chains), ctx()) == []
    with pytest.raises(InvalidCommand, match="is not engine or engine:model"):
        decide_project(project, pcmd.SetFallbacks(fallbacks=FallbackChains(qa=["Codex GPT"])), ctx())
    with pytest.raises(InvalidCommand, match="at most 5"):
        decide_project(project, pcmd.SetFallbacks(fallbacks=FallbackChains(qa=["codex"] * 6)), ctx())
    cleared = project
    for e in decide_project(project, pcmd.SetFallbacks(fallbacks=FallbackChains()), ctx()):
        cleared = evolve_project(cleared, e)
    assert cleared.fallbacks is None

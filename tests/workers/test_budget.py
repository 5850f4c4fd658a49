"""Budget arithmetic on its own: which limits apply, what is spent, whether the next call fits, and what a
call costs by the price table. Pure functions; the worker's strict/warn handling is in test_worker_rules."""

from __future__ import annotations

import pytest
from deksdenflow_codex_worker import budget
from deksdenflow_codex_worker.budget import Limit, Scope, Spent
from deksdenflow_codex_worker.engines.base import TokenCounts
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import StepType, TokenUsage
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState, StepState
from deksdenflow_core.errors import PermanentFailure

# --- which limits apply --------------------------------------------------------------------------------


def settings(**values: object) -> WorkerSettings:
    return WorkerSettings.model_validate(values)


def test_no_limit_is_set_by_default() -> None:
    assert budget.limits(settings(), for_step=True) == []


@pytest.mark.parametrize("mode", ["strict", "warn"])
def test_every_set_limit_applies_in_strict_and_warn_mode(mode: str) -> None:
    s = settings(
        token_budget_mode=mode,
        max_tokens_per_step=10,
        max_cost_usd_per_protocol=1.5,
        max_tokens_per_project=30,
        max_cost_usd_per_project=0.000_001,
    )
    assert budget.limits(s, for_step=True) == [
        Limit(Scope.STEP, 10, 0),
        Limit(Scope.PROTOCOL, 0, 1_500_000),
        Limit(Scope.PROJECT, 30, 1),
    ]


def test_mode_off_checks_nothing() -> None:
    s = settings(token_budget_mode="off", max_tokens_per_step=10, max_tokens_per_protocol=10)
    assert budget.limits(s, for_step=True) == []


def test_a_call_outside_a_step_is_not_bound_by_the_step_limit() -> None:
    s = settings(max_tokens_per_step=10, max_tokens_per_protocol=20)
    assert budget.limits(s, for_step=False) == [Limit(Scope.PROTOCOL, 20, 0)]
    assert budget.limits(settings(max_cost_usd_per_step=1.0), for_step=False) == []


def test_dollars_become_micro_dollars_rounded() -> None:
    s = settings(max_cost_usd_per_step=0.1234567)
    assert budget.limits(s, for_step=True) == [Limit(Scope.STEP, 0, 123_457)]


# --- what is spent -------------------------------------------------------------------------------------


def run_with(*, tokens: tuple[int, int], cost: int, steps: tuple[StepState, ...] = ()) -> ProtocolRunState:
    return ProtocolRunState(
        protocol_run_id="r1",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_micro_usd=cost,
        steps=steps,
    )


def step(step_run_id: str, *, tokens: tuple[int, int], cost: int) -> StepState:
    return StepState(
        step_run_id=step_run_id,
        index=0,
        name="00-setup.md",
        step_type=StepType.SETUP,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_micro_usd=cost,
    )


def test_a_run_spends_its_input_and_output_tokens_and_its_cost() -> None:
    run = run_with(tokens=(100, 20), cost=7, steps=(step("s1", tokens=(30, 5), cost=2),))
    assert budget.run_spent(run, None) == {Scope.PROTOCOL: Spent(120, 7)}
    assert budget.run_spent(run, "s1") == {Scope.PROTOCOL: Spent(120, 7), Scope.STEP: Spent(35, 2)}


def test_a_step_the_run_does_not_know_has_spent_nothing_of_its_own() -> None:
    run = run_with(tokens=(1, 1), cost=0)
    assert budget.run_spent(run, "gone") == {Scope.PROTOCOL: Spent(2, 0)}


def usage(call_id: str, tokens: tuple[int, int] | None, cost: int) -> ev.UsageRecorded:
    counted = TokenUsage(input_tokens=tokens[0], output_tokens=tokens[1]) if tokens else None
    return ev.UsageRecorded(call_id=call_id, usage=counted, cost_micro_usd=cost)


def test_a_project_spends_each_call_once_whatever_else_its_log_holds() -> None:
    events = [
        usage("a", (100, 10), 5),
        usage("a", (100, 10), 5),  # a redelivered job recorded the same call again
        usage("b", None, 3),  # an engine that reported no tokens, only a cost
        ev.PlanningRequested(attempt=1),
        usage("c", (1, 2), 0),
    ]
    assert budget.project_spent(events) == Spent(113, 8)
    assert budget.project_spent([]) == Spent(0, 0)


# --- whether the next call fits ------------------------------------------------------------------------


def test_a_call_that_reaches_a_limit_exactly_fits_and_one_token_more_does_not() -> None:
    limits = [Limit(Scope.STEP, 100, 0)]
    spent = {Scope.STEP: Spent(90, 0)}
    assert budget.check(limits, spent, next_tokens=10, next_cost_micro_usd=0).allowed
    verdict = budget.check(limits, spent, next_tokens=11, next_cost_micro_usd=0)
    assert not verdict.allowed
    assert verdict.reason == (
        "token budget per step would be exceeded: 90 used + ~11 for the next call > 100"
    )


def test_the_cost_limit_is_checked_in_micro_dollars_and_said_in_dollars() -> None:
    limits = [Limit(Scope.PROJECT, 0, 2_000_000)]
    spent = {Scope.PROJECT: Spent(10**9, 1_500_000)}  # tokens are not limited here
    assert budget.check(limits, spent, next_tokens=10**9, next_cost_micro_usd=500_000).allowed
    verdict = budget.check(limits, spent, next_tokens=1, next_cost_micro_usd=500_001)
    assert verdict.reason == (
        "cost budget per project would be exceeded: $1.5000 used + ~$0.5000 for the next call > $2.0000"
    )


def test_nothing_spent_yet_counts_as_zero_and_the_first_limit_crossed_is_named() -> None:
    limits = [Limit(Scope.STEP, 5, 0), Limit(Scope.PROTOCOL, 1, 0)]
    verdict = budget.check(limits, {}, next_tokens=6, next_cost_micro_usd=0)
    assert verdict.reason.startswith("token budget per step ")
    assert budget.check([], {}, next_tokens=10**12, next_cost_micro_usd=10**12).allowed


def test_a_prompt_is_estimated_at_four_characters_a_token_and_never_at_zero() -> None:
    assert budget.estimate_tokens("x" * 400) == 100
    assert budget.estimate_tokens("xyz") == 1
    assert budget.estimate_tokens("") == 1


# --- what a call costs ---------------------------------------------------------------------------------

PRICES = budget.PriceTable({"m": {"input": 2.0, "cached_input": 0.5, "output": 8.0}, "plain": {"input": 1.0}})


def test_fresh_and_cached_input_and_output_have_their_own_prices() -> None:
    used = TokenCounts(input_tokens=1_000, cached_input_tokens=400, output_tokens=100)
    assert PRICES.cost_micro_usd("m", used) == 600 * 2 + 400 * 0.5 + 100 * 8


def test_cached_input_without_a_price_of_its_own_costs_as_input_and_a_missing_price_is_free() -> None:
    used = TokenCounts(input_tokens=10, cached_input_tokens=4, output_tokens=1_000)
    assert PRICES.cost_micro_usd("plain", used) == 10


def test_cached_input_is_never_more_than_the_input() -> None:
    used = TokenCounts(input_tokens=10, cached_input_tokens=50)
    assert PRICES.cost_micro_usd("m", used) == 10 * 0.5


def test_a_model_without_prices_costs_nothing_and_costs_are_rounded() -> None:
    assert PRICES.cost_micro_usd("unknown", TokenCounts(input_tokens=10**6, output_tokens=10**6)) == 0
    unpublished = budget.PriceTable({}, published=False)
    assert unpublished.cost_micro_usd("gpt-5", TokenCounts(input_tokens=10**6)) == 0
    assert budget.PriceTable({"m": {"input": 0.3}}).cost_micro_usd("m", TokenCounts(input_tokens=5)) == 2
    assert PRICES.estimate_micro_usd("m", 3) == 6


def test_a_model_the_table_does_not_list_costs_its_published_price() -> None:
    # gpt-5 as OpenAI publishes it (genai-prices' bundled table): $1.25/M input, $0.125/M cached, $10/M output
    used = TokenCounts(input_tokens=1_000_000, cached_input_tokens=200_000, output_tokens=100_000)
    assert PRICES.cost_micro_usd("gpt-5", used) == 800_000 * 1.25 + 200_000 * 0.125 + 100_000 * 10
    assert budget.published_cost_micro_usd("claude-sonnet-4-5", TokenCounts(output_tokens=1_000)) > 0
    # a configured price wins over the published one
    mine = budget.PriceTable({"gpt-5": {"input": 1.0}})
    assert mine.cost_micro_usd("gpt-5", TokenCounts(input_tokens=1_000)) == 1_000
    assert PRICES.cost_micro_usd("no-such-model-x", TokenCounts(input_tokens=10**6)) == 0


def test_a_strict_budget_that_refuses_planning_fails_it_for_good() -> None:
    refused = budget.BudgetExceeded("budget: token budget per protocol would be exceeded")
    assert isinstance(refused, PermanentFailure)
    assert not refused.retryable

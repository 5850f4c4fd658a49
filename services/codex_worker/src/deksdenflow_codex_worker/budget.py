"""Token and money budgets, and what a call costs.

Usage is real (reported by the engine per call) and cumulative: per step and per run it is folded into
the run's state from ``usage_recorded`` events; per project it is summed from the project's
``usage_recorded`` events in the log. Before each agent call the worker checks every limit against what
is already spent plus an estimate of the call's input (prompt characters / 4; an agent's own tool turns
cannot be known in advance). ``strict`` refuses the call that would cross a limit and the step is blocked
with the reason; ``warn`` logs and goes on; ``off`` checks nothing. Before any of that, spending past
``budget_warn_share`` of a limit is recorded once as a warning (``crossed``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import genai_prices
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.errors import PermanentFailure

from deksdenflow_codex_worker.engines.base import TokenCounts
from deksdenflow_codex_worker.settings import WorkerSettings


class BudgetExceeded(PermanentFailure):
    """A strict budget refuses the next agent call of a job that has no step to block (planning): the
    same call would be refused again, so the job fails with the reason."""

    code = "budget_exceeded"


class Scope(StrEnum):
    """What a limit bounds: one step's calls, one run's, or a whole project's."""

    STEP = "step"
    PROTOCOL = "protocol"
    PROJECT = "project"


@dataclass(frozen=True)
class Spent:
    tokens: int = 0
    cost_micro_usd: int = 0


@dataclass(frozen=True)
class Limit:
    scope: Scope
    max_tokens: int  # 0: unlimited
    max_cost_micro_usd: int  # 0: unlimited


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


class PriceTable:
    """What a call costs: USD per million tokens by model, ``{model: {input, cached_input, output}}`` as
    configured (``DEKSDENFLOW_PRICE_TABLE``) first; for a model it does not list, the published prices
    shipped with ``genai-prices`` (a maintained table of the providers' prices, read from its bundled
    snapshot: no request is made), unless ``published`` is off. A model known to neither costs 0."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]], *, published: bool = True) -> None:
        self._prices = {m: dict(p) for m, p in prices.items()}
        self._published = published

    def cost_micro_usd(self, model: str, usage: TokenCounts) -> int:
        """USD per 1M tokens x tokens = micro-USD exactly; cached input at its own price."""
        p = self._prices.get(model)
        if p is None:
            return published_cost_micro_usd(model, usage) if self._published else 0
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        cost = (
            fresh * p.get("input", 0.0)
            + cached * p.get("cached_input", p.get("input", 0.0))
            + usage.output_tokens * p.get("output", 0.0)
        )
        return round(cost)

    def estimate_micro_usd(self, model: str, input_tokens: int) -> int:
        return self.cost_micro_usd(model, TokenCounts(input_tokens=input_tokens))


@functools.lru_cache(maxsize=256)
def _published_model(model: str) -> bool:
    """Whether the bundled price table knows ``model`` (asked once per model)."""
    try:
        genai_prices.calc_price(genai_prices.Usage(input_tokens=0, output_tokens=0), model)
    except LookupError:
        return False
    return True


def published_cost_micro_usd(model: str, usage: TokenCounts) -> int:
    """The call's cost at the provider's published prices (``genai-prices``' snapshot), 0 if unknown."""
    if not model or not _published_model(model):
        return 0
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=min(usage.cached_input_tokens, usage.input_tokens),
            output_tokens=usage.output_tokens,
        ),
        model,
    )
    return round(price.total_price * 1_000_000)


def limits(settings: WorkerSettings, *, for_step: bool) -> list[Limit]:
    """The limits to check before a call (none in mode ``off``); a limit of 0 tokens and $0 is no limit,
    and a call outside a step (planning) is not bound by the per-step limit."""
    if settings.token_budget_mode == "off":  # noqa: S105 - a mode, not a secret
        return []
    s = settings
    every = [
        Limit(Scope.STEP, s.max_tokens_per_step, round(s.max_cost_usd_per_step * 1e6)),
        Limit(Scope.PROTOCOL, s.max_tokens_per_protocol, round(s.max_cost_usd_per_protocol * 1e6)),
        Limit(Scope.PROJECT, s.max_tokens_per_project, round(s.max_cost_usd_per_project * 1e6)),
    ]
    return [
        lim
        for lim in every
        if (lim.max_tokens or lim.max_cost_micro_usd) and (for_step or lim.scope is not Scope.STEP)
    ]


def run_spent(run: ProtocolRunState, step_run_id: str | None) -> dict[Scope, Spent]:
    """What the run (and its step ``step_run_id``, if given and known) has spent so far."""
    spent = {Scope.PROTOCOL: Spent(run.input_tokens + run.output_tokens, run.cost_micro_usd)}
    if step_run_id is not None and (step := run.step(step_run_id)) is not None:
        spent[Scope.STEP] = Spent(step.input_tokens + step.output_tokens, step.cost_micro_usd)
    return spent


def project_spent(events: Iterable[object]) -> Spent:
    """The sum of a project's ``usage_recorded`` events, each call counted once (a redelivered job may
    record a call's usage twice)."""
    tokens = cost = 0
    seen: set[str] = set()
    for e in events:
        if isinstance(e, ev.UsageRecorded) and e.call_id not in seen:
            seen.add(e.call_id)
            tokens += (e.usage.input_tokens + e.usage.output_tokens) if e.usage else 0
            cost += e.cost_micro_usd
    return Spent(tokens, cost)


def estimate_tokens(prompt: str) -> int:
    """A floor for what a call will use: its prompt, at ~4 characters per token."""
    return max(1, len(prompt) // 4)


def check(
    limits: list[Limit], spent: Mapping[Scope, Spent], *, next_tokens: int, next_cost_micro_usd: int
) -> Verdict:
    """Whether a call estimated at ``next_tokens`` / ``next_cost`` fits every limit."""
    for limit in limits:
        used = spent.get(limit.scope, Spent())
        if limit.max_tokens and used.tokens + next_tokens > limit.max_tokens:
            return Verdict(
                False,
                f"token budget per {limit.scope} would be exceeded: {used.tokens} used + ~{next_tokens} "
                f"for the next call > {limit.max_tokens}",
            )
        if limit.max_cost_micro_usd and used.cost_micro_usd + next_cost_micro_usd > limit.max_cost_micro_usd:
            return Verdict(
                False,
                f"cost budget per {limit.scope} would be exceeded: ${used.cost_micro_usd / 1e6:.4f} used + "
                f"~${next_cost_micro_usd / 1e6:.4f} for the next call "
                f"> ${limit.max_cost_micro_usd / 1e6:.4f}",
            )
    return Verdict(True)


@dataclass(frozen=True)
class Crossed:
    """A budget whose warning share is reached: what is spent and the limit (tokens, or micro-USD)."""

    scope: Scope
    kind: str  # "tokens" or "cost"
    spent: int
    limit: int


def crossed(limits: list[Limit], spent: Mapping[Scope, Spent], share: float) -> list[Crossed]:
    """Every budget of ``limits`` at or past ``share`` of its limit (none when ``share`` is 0)."""
    if share <= 0:
        return []
    found = []
    for limit in limits:
        used = spent.get(limit.scope)
        if used is None:
            continue
        if limit.max_tokens and used.tokens >= share * limit.max_tokens:
            found.append(Crossed(limit.scope, "tokens", used.tokens, limit.max_tokens))
        if limit.max_cost_micro_usd and used.cost_micro_usd >= share * limit.max_cost_micro_usd:
            found.append(Crossed(limit.scope, "cost", used.cost_micro_usd, limit.max_cost_micro_usd))
    return found

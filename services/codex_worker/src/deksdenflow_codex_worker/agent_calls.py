"""Every agent call a job makes goes through here: which engine, the budget check before it, tries with
backoff for transient engine failures (``step_attempt_failed`` for executions), the real usage recorded
after it, and for structured output one re-ask with the validation error before ``InvalidOutput``.

The call is watched (``JobKit.guarded``): a pause or cancel of the run stops the agent within a second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import structlog
from deksdenflow_core import tracing
from deksdenflow_core.aggregates import PROTOCOL_RUN
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import Phase, TokenUsage
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState, StepState
from deksdenflow_core.domain.protocol_run.state import budget_warning_key
from deksdenflow_core.errors import WorkNotCurrent
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.jobs import failure_reason

from deksdenflow_codex_worker import budget, fallbacks
from deksdenflow_codex_worker.engines.base import (
    AgentCall,
    AgentResult,
    CallPhase,
    EngineError,
    Progress,
    Sandbox,
)
from deksdenflow_codex_worker.engines.failures import fallback_reason
from deksdenflow_codex_worker.engines.registry import EngineRegistry
from deksdenflow_codex_worker.kit import IsCurrent, Job, JobKit
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.prompts import Prompt, schema
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_codex_worker.structured import ask_structured

log = structlog.get_logger("deksdenflow.codex_worker")
T = TypeVar("T")


class _Switch(Exception):
    """The call's engine or model met a classified error and another is left to take the call."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def _switch_on(error: str, switch: bool) -> None:
    """Raise ``_Switch`` when ``error`` is one a fallback takes and a fallback is left."""
    reason = fallback_reason(error) if switch else None
    if reason is not None:
        raise _Switch(reason.value, error)


_PHASES: Mapping[CallPhase, Phase] = {
    CallPhase.PLANNING: Phase.PLANNING,
    CallPhase.DECOMPOSE: Phase.DECOMPOSE,
    CallPhase.EXEC: Phase.EXEC,
    CallPhase.QA: Phase.QA,
    CallPhase.DISCOVERY: Phase.DISCOVERY,
}


class AgentCalls:
    """The engines, budgets and usage records behind every job's agent calls."""

    def __init__(
        self,
        kit: JobKit,
        store: JetStreamEventStore,
        settings: WorkerSettings,
        engines: EngineRegistry,
        metrics: WorkerMetrics,
    ) -> None:
        self.kit = kit
        self.store = store
        self.settings = settings
        self.engines = engines
        self.metrics = metrics
        self.prices = budget.PriceTable(settings.prices(), published=settings.published_prices)
        self.cooldowns = fallbacks.Cooldowns(settings.fallback_cooldown_seconds)

    def engine_for(self, phase: CallPhase, project: ProjectState) -> str:
        """The project's engine for ``phase``, else this worker's for it, else the default."""
        chosen: str = getattr(project.default_engines, phase.value)
        return chosen or self.settings.engine_for(phase.value)

    def call(
        self,
        job: Job,
        phase: CallPhase,
        prompt: str,
        workdir: Path,
        model: str,
        sandbox: Sandbox,
        *,
        step: str = "",
        attempt: int = 0,
        output_schema: str = "",
        prompt_of: Prompt | None = None,
        reask: int = 0,
    ) -> AgentCall:
        """An agent call of ``job``; ``output_schema`` names the schema its last message must match;
        ``prompt_of``: the prompt the text was made from (its name and version go on the usage record)."""
        return AgentCall(
            call_id=uuid.uuid4().hex,
            phase=phase,
            prompt=prompt,
            workdir=workdir,
            model=model,
            sandbox=sandbox,
            output_schema=schema(output_schema) if output_schema else None,
            labels={
                "protocol": job.run.protocol_name,
                "project": job.project.project_id,
                "step": step,
                "attempt": str(attempt),
                "reask": str(reask),
                "prompt": prompt_of.name if prompt_of else "",
                "prompt_version": prompt_of.version if prompt_of else "",
            },
            timeout_seconds=self.settings.agent_timeout_seconds,
        )

    async def structured(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        current: IsCurrent,
        parse: Callable[[str], T],
    ) -> T:
        """A call whose output must parse: one more try with the validation error, then ``InvalidOutput``."""
        return await ask_structured(
            lambda attempt_call: self.run(job, attempt_call, engine_id, step, current), call, parse
        )

    async def run(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        current: IsCurrent,
        *,
        attempt: int | None = None,
    ) -> AgentResult:
        """One agent call: budget check, tries with backoff for transient engine failures, usage recorded,
        stopped as soon as the run is paused or cancelled. ``attempt``: the execution attempt whose
        failed tries are recorded as ``step_attempt_failed``. On a classified error (a rate or usage
        limit, the context window, a provider error, a timeout) the call moves on to the next engine and
        model of the phase's fallback chain (``fallbacks.py``), recorded as ``engine_fallback_taken``."""
        await self.check_budget(job, call, step)
        full = fallbacks.chain(
            fallbacks.Choice(engine_id, call.model),
            self.fallbacks_for(call.phase, job.project, step),
            self.engines.__contains__,
        )
        usable = self.cooldowns.usable(full)
        if usable[0] != full[0]:
            await self._fallback(
                job, step, call, full[0], usable[0], "cooldown", "skipped while it cools down"
            )
        for index, choice in enumerate(usable):
            now = replace(call, model=choice.model)
            following = usable[index + 1] if index + 1 < len(usable) else None
            try:
                return await self._tries(
                    job, now, choice.engine, step, current, attempt, switch=following is not None
                )
            except _Switch as switch:
                assert following is not None  # noqa: S101 - only raised when there is a next choice
                until = self.cooldowns.start(choice)
                await self._fallback(job, step, now, choice, following, switch.reason, switch.error, until)
        raise AssertionError("unreachable: the last choice returns or raises")

    def fallbacks_for(
        self, phase: CallPhase, project: ProjectState, step: StepState | None = None
    ) -> list[str]:
        """An execution's step's own fallback chain, else the project's for ``phase``, else this worker's."""
        if phase is CallPhase.EXEC and step is not None and step.fallbacks:
            return list(step.fallbacks)
        own: list[str] = list(getattr(project.fallbacks, phase.value)) if project.fallbacks else []
        return own or self.settings.fallbacks_for(phase.value)

    async def _fallback(
        self,
        job: Job,
        step: StepState | None,
        call: AgentCall,
        left: fallbacks.Choice,
        taken: fallbacks.Choice,
        reason: str,
        error: str,
        until: float = 0.0,
    ) -> None:
        log.warning("agent call falls back", left=str(left), taken=str(taken), reason=reason, error=error)
        self.metrics.fallbacks.labels(call.phase.value, reason).inc()
        await self.kit.record(
            job.run.protocol_run_id,
            [
                cmd.RecordEngineFallback(
                    step_run_id=step.step_run_id if step else "",
                    phase=_PHASES[call.phase],
                    from_engine=left.engine,
                    from_model=left.model,
                    to_engine=taken.engine,
                    to_model=taken.model,
                    reason=reason,
                    error=error[:2000],
                    cooldown_until_ms=int(until * 1000),
                )
            ],
            job.delivery,
        )

    async def _tries(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        current: IsCurrent,
        attempt: int | None,
        *,
        switch: bool,
    ) -> AgentResult:
        """The call on one engine and model, with its tries; ``_Switch`` on a classified error when
        ``switch`` (another engine or model is left to take it)."""
        engine = self.engines.get(engine_id)
        tries = self.settings.codex_worker_tries
        for try_number in range(1, tries + 1):
            call_id = uuid.uuid4().hex
            started = asyncio.get_running_loop().time()
            try:
                with tracing.child_span(
                    "codex_worker",
                    f"agent {call.phase.value}",
                    {
                        "gen_ai.system": engine_id,
                        "gen_ai.request.model": call.model,
                        "deksdenflow.try": try_number,
                    },
                ) as span:
                    result = await self.kit.guarded(job, current, engine.run(call, _progress(call)))
                    if span is not None:
                        span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
                        span.set_attribute("gen_ai.usage.output_tokens", result.usage.output_tokens)
                        if not result.ok:
                            tracing.mark_error(span, result.error or "the agent failed")
            except EngineError as exc:
                self.metrics.agent_calls.labels(call.phase.value, engine_id, "error").inc()
                self._error(call, engine_id, "engine_error")
                _switch_on(failure_reason(exc), switch)
                if not exc.retryable or try_number == tries:
                    raise
                if attempt is not None and step is not None:
                    await self._attempt_failed(job, step, attempt, try_number, tries, failure_reason(exc))
                else:
                    await asyncio.sleep(self._backoff(try_number))
                continue
            finally:
                self.metrics.agent_seconds.labels(call.phase.value, engine_id).observe(
                    asyncio.get_running_loop().time() - started
                )
            self.metrics.agent_calls.labels(
                call.phase.value, engine_id, "ok" if result.ok else "failed"
            ).inc()
            if not result.ok:
                self._error(call, engine_id, "failed")
            await self._record_usage(job, call, engine_id, step, result, call_id)
            await self._warn_budgets(job, step)
            if not result.ok:
                _switch_on(result.error, switch)
            if not result.ok and attempt is not None and step is not None and try_number < tries:
                # A failed turn of an execution is one failed try; the step fails only when all are spent.
                await self._attempt_failed(
                    job, step, attempt, try_number, tries, f"the agent failed: {result.error}"
                )
                continue
            return result
        raise AssertionError("unreachable: the last try returns or raises")

    async def _attempt_failed(
        self, job: Job, step: StepState, attempt: int, try_number: int, tries: int, reason: str
    ) -> None:
        delay = self._backoff(try_number)
        failed_at_ms = int(time.time() * 1000)
        await self.kit.record(
            job.run.protocol_run_id,
            [
                cmd.RecordStepAttemptFailed(
                    step_run_id=step.step_run_id,
                    attempt=attempt,
                    try_number=try_number,
                    reason=reason,
                    tries=tries,
                    failed_at_ms=failed_at_ms,
                    next_try_at_ms=failed_at_ms + int(delay * 1000),
                )
            ],
            job.delivery,
        )
        await asyncio.sleep(delay)

    def _error(self, call: AgentCall, engine_id: str, kind: str) -> None:
        m = self.metrics
        m.agent_errors.labels(call.phase.value, engine_id, m.model(call.model), kind).inc()

    def _backoff(self, try_number: int) -> float:
        steps = self.settings.backoff()
        return steps[min(try_number, len(steps)) - 1]

    # --- spending -----------------------------------------------------------------------------------------

    async def _record_usage(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        result: AgentResult,
        call_id: str,
    ) -> None:
        u = result.usage
        cost = result.reported_cost_micro_usd or self.prices.cost_micro_usd(call.model, u)
        m, phase, model = self.metrics, call.phase.value, self.metrics.model(call.model)
        m.tokens.labels(phase, model, "input").inc(u.input_tokens)
        m.tokens.labels(phase, model, "cached_input").inc(u.cached_input_tokens)
        m.tokens.labels(phase, model, "output").inc(u.output_tokens)
        m.cost.labels(phase, model).inc(cost / 1e6)
        await self.kit.record(
            job.run.protocol_run_id,
            [
                cmd.RecordUsage(
                    call_id=call_id,
                    step_run_id=step.step_run_id if step else "",
                    phase=_PHASES[call.phase],
                    engine_id=engine_id,
                    model=call.model,
                    prompt_name=call.labels.get("prompt", ""),
                    prompt_version=call.labels.get("prompt_version", ""),
                    usage=TokenUsage(
                        input_tokens=u.input_tokens,
                        cached_input_tokens=u.cached_input_tokens,
                        output_tokens=u.output_tokens,
                        reasoning_output_tokens=u.reasoning_output_tokens,
                    ),
                    cost_micro_usd=cost,
                )
            ],
            job.delivery,
        )

    async def _spent(
        self, job: Job, step: StepState | None, limits: list[budget.Limit]
    ) -> tuple[ProtocolRunState, dict[budget.Scope, budget.Spent]]:
        """The run as the log has it, and what it (its step, its project when a limit needs it) spent."""
        run = (await self.kit.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
        spent = budget.run_spent(run, step.step_run_id if step is not None else None)
        if any(lim.scope is budget.Scope.PROJECT for lim in limits):
            # Every usage event of the project, wherever it stands in its decision: from the feed.
            loaded = await self.store.read(
                self.store.subjects.feed.of_type(
                    ev.UsageRecorded.EVENT_TYPE, project_id=job.project.project_id
                ),
                stream=self.store.feed_stream,
            )
            spent[budget.Scope.PROJECT] = budget.project_spent(r.event for r in loaded.events)
        return run, spent

    async def _warn_budgets(self, job: Job, step: StepState | None) -> None:
        """Record each budget whose warning share the spending has now reached, once (the run's state
        says which were recorded; ``decide`` drops a repeat)."""
        share = self.settings.budget_warn_share
        limits = budget.limits(self.settings, for_step=step is not None)
        if not limits or share <= 0:
            return
        run, spent = await self._spent(job, step, limits)
        step_run_id = step.step_run_id if step is not None else ""
        for c in budget.crossed(limits, spent, share):
            on_step = step_run_id if c.scope is budget.Scope.STEP else ""
            if budget_warning_key(c.scope.value, c.kind, on_step) in run.budget_warnings:
                continue
            await self.kit.record(
                job.run.protocol_run_id,
                [
                    cmd.RecordBudgetWarning(
                        scope=c.scope.value,
                        kind=c.kind,
                        step_run_id=step_run_id,
                        share=share,
                        spent=c.spent,
                        limit=c.limit,
                    )
                ],
                job.delivery,
            )
            self.metrics.budget_warnings.labels(c.scope.value, c.kind).inc()
            log.warning(
                "budget warning", scope=c.scope.value, kind=c.kind, spent=c.spent, limit=c.limit, share=share
            )

    async def check_budget(self, job: Job, call: AgentCall, step: StepState | None) -> None:
        """Refuse a call that would cross a limit (``strict``: the step is blocked, a planning job fails
        with ``BudgetExceeded``), or only say so (``warn``)."""
        mode = self.settings.token_budget_mode
        limits = budget.limits(self.settings, for_step=step is not None)
        if not limits:
            return
        _, spent = await self._spent(job, step, limits)
        tokens = budget.estimate_tokens(call.prompt)
        verdict = budget.check(
            limits,
            spent,
            next_tokens=tokens,
            next_cost_micro_usd=self.prices.estimate_micro_usd(call.model, tokens),
        )
        if verdict.allowed:
            return
        self.metrics.budget_refusals.labels(mode).inc()
        if mode == "warn":
            log.warning("budget exceeded (warn mode: going on)", reason=verdict.reason)
            return
        if step is not None:
            await self.kit.record(
                job.run.protocol_run_id,
                [cmd.RecordStepBlocked(step_run_id=step.step_run_id, reason=f"budget: {verdict.reason}")],
                job.delivery,
            )
            raise WorkNotCurrent(f"step blocked by budget: {verdict.reason}")
        raise budget.BudgetExceeded(f"budget: {verdict.reason}")


def _progress(call: AgentCall) -> Callable[[Progress], Awaitable[None]]:
    async def report(p: Progress) -> None:
        log.debug("agent progress", phase=call.phase.value, kind=p.kind, text=p.text[:200])

    return report

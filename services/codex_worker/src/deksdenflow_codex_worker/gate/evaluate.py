"""The gate's agent call: the worker's engines, its re-ask and its tries, under one deadline.

As in the worker (``agent_calls.py``), a transient engine failure (the model service unreachable or
overloaded) is tried again after a backoff, up to ``DEKSDENFLOW_CODEX_WORKER_TRIES`` tries, and an answer
that is not a valid verdict is asked again once with the reason. Unlike the worker, nothing here is
recorded: what could not be evaluated is reported as such, and the gate's exit code says so. The deadline
covers the whole evaluation (every try and the re-ask); when it passes, the agent is stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from deksdenflow_codex_worker.engines.base import (
    AgentCall,
    AgentResult,
    Engine,
    EngineError,
    EngineNotInstalled,
    EngineTimeout,
    Progress,
    TokenCounts,
)
from deksdenflow_codex_worker.planning import InvalidOutput
from deksdenflow_codex_worker.qa_verdict import Verdict, parse_verdict
from deksdenflow_codex_worker.structured import ask_structured

log = structlog.get_logger("deksdenflow.qa")


@dataclass(frozen=True)
class Evaluation:
    """A verdict, or why there is none."""

    verdict: Verdict | None
    error: str = ""
    # The agent's CLI could not be started at all (not installed): a missing dependency, not a failure.
    missing_dependency: bool = False
    usage: TokenCounts = field(default_factory=TokenCounts)
    calls: int = 0


async def evaluate(
    engine: Engine,
    call: AgentCall,
    *,
    tries: int,
    backoff: Sequence[float],
    timeout_seconds: float,
) -> Evaluation:
    """Ask ``engine`` for the verdict of ``call``; every way it can go wrong becomes an ``Evaluation``."""
    spent: list[AgentResult] = []

    async def run(attempt: AgentCall) -> AgentResult:
        result = await _with_tries(engine, attempt, tries, backoff)
        spent.append(result)
        return result

    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            verdict = await ask_structured(run, call, parse_verdict)
    except (TimeoutError, EngineTimeout) as exc:
        # The engine's own timer is set to the same deadline and may go off first.
        if isinstance(exc, TimeoutError) and not deadline.expired():
            raise
        return _failed(f"QA did not finish within {timeout_seconds:g}s; the agent was stopped", spent)
    except EngineNotInstalled as exc:
        return _failed(f"the {engine.engine_id} engine cannot run: {exc.message}", spent, missing=True)
    except EngineError as exc:
        return _failed(f"the {engine.engine_id} engine failed: {exc.message}", spent)
    except InvalidOutput as exc:
        return _failed(f"the agent gave no valid verdict, even when asked again: {exc.message}", spent)
    return Evaluation(verdict=verdict, usage=_usage(spent), calls=len(spent))


async def _with_tries(engine: Engine, call: AgentCall, tries: int, backoff: Sequence[float]) -> AgentResult:
    for try_number in range(1, tries + 1):
        try:
            return await engine.run(call, _progress)
        except EngineTimeout:
            raise  # the deadline is the whole evaluation's: no time is left for another try
        except EngineError as exc:
            if not exc.retryable or try_number == tries:
                raise
            delay = backoff[min(try_number, len(backoff)) - 1]
            log.warning("engine failed; trying again", error=exc.message, try_number=try_number, delay=delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last try returns or raises")


def _failed(error: str, spent: list[AgentResult], *, missing: bool = False) -> Evaluation:
    log.error("QA could not evaluate", reason=error)
    return Evaluation(
        verdict=None, error=error, missing_dependency=missing, usage=_usage(spent), calls=len(spent)
    )


def _usage(results: list[AgentResult]) -> TokenCounts:
    total = TokenCounts()
    for result in results:
        total = total + result.usage
    return total


async def _progress(progress: Progress) -> None:
    """What the agent does, on stderr: it reads files and runs checks before it answers."""
    if progress.kind in ("command", "notice", "warning", "file_change"):
        log.info(f"agent {progress.kind}", text=progress.text[:200])
    else:
        log.debug(f"agent {progress.kind}", text=progress.text[:200])

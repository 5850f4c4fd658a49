"""Structured output: one re-ask with the validation error, then ``InvalidOutput``.

The agent CLIs do not enforce output schemas, so whoever needs structured output checks it. A wrong answer
(or a failed turn) gets one more try that carries what was wrong; an answer still wrong after that will not
become right by asking again. The worker's agent calls and the QA gate both ask this way.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import structlog

from deksdenflow_codex_worker.engines.base import AgentCall, AgentResult
from deksdenflow_codex_worker.planning import InvalidOutput

log = structlog.get_logger("deksdenflow.codex_worker")
T = TypeVar("T")

# Runs one call to its result (engine errors are raised, not answered).
RunCall = Callable[[AgentCall], Awaitable[AgentResult]]


async def ask_structured(run: RunCall, call: AgentCall, parse: Callable[[str], T]) -> T:
    """``call``'s output parsed by ``parse`` (which raises ``InvalidOutput``), asked at most twice."""
    problem = ""
    for _ in range(2):
        result = await run(call if not problem else re_ask(call, problem))
        if not result.ok:
            problem = f"the agent failed: {result.error or 'no reason given'}"
            continue
        try:
            return parse(result.last_message)
        except InvalidOutput as exc:
            problem = str(exc)
            log.warning("invalid structured output", phase=call.phase.value, problem=problem)
    raise InvalidOutput(problem)


def re_ask(call: AgentCall, problem: str) -> AgentCall:
    """``call`` again, told why its previous answer was rejected."""
    return replace(
        call,
        call_id=uuid.uuid4().hex,
        prompt=f"{call.prompt}\n\nYour previous answer was rejected: {problem}\n"
        "Answer again with JSON only, exactly matching the schema.",
    )

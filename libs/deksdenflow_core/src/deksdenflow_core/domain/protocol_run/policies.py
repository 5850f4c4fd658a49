"""Step policies: what a step does beyond running once — loop back, trigger another agent, stop at a
checkpoint — and what its agent's directive asks. Pure decisions, each one an event of the run.

Why no policy can make a run go on forever:
* a loop is taken at most ``max_iterations`` (<= ``MAX_ITERATIONS``) times per step, and the counter of
  a step is never reset (not by another loop that resets the step, not by a retry), so a run takes at
  most the sum of its planned steps' budgets of loops;
* a chain of triggers is at most ``MAX_TRIGGER_DEPTH`` deep (a triggered step has no loop of its own and
  triggers in turn only one step deeper), so each completion of a planned step adds a bounded number of
  steps, and a planned step completes at most once more than the loops that reset it;
* a checkpoint stops the run for a person: it never asks for work by itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    DirectiveAction,
    FailureSource,
    LoopCause,
    StepLoopPolicy,
    StepPlan,
    StepTriggerPolicy,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run.state import (
    DONE_STEP_STATUSES,
    ProtocolRunState,
    StepState,
)

MAX_ITERATIONS = 20
MAX_TRIGGER_DEPTH = 3
# What a loop with no ``on`` is taken on.
_ALL_CAUSES = frozenset({LoopCause.EXECUTION_FAILED, LoopCause.QA_FAILED, LoopCause.DIRECTIVE})
CAUSE_OF_SOURCE = {FailureSource.EXECUTION: LoopCause.EXECUTION_FAILED, FailureSource.QA: LoopCause.QA_FAILED}
_SLUG = re.compile(r"[^a-z0-9-]+")


# --- validation ---------------------------------------------------------------------------------------------


def policy_problems(steps: tuple[StepPlan, ...]) -> list[str]:
    """Every reason the plan's policies are not acceptable (each names its step and field)."""
    problems: list[str] = []
    ordered = sorted(steps, key=lambda s: s.index)
    position = {s.name: i for i, s in enumerate(ordered)}
    for i, s in enumerate(ordered):
        where = f"step {s.index} ({s.name})"
        policies = s.policies
        if policies is None:
            continue
        if (loop := policies.loop) is not None:
            back = position.get(loop.back_to or s.name)
            if back is None or back > i:
                problems.append(
                    f"{where}: policies.loop.back_to {loop.back_to!r} must name this step or an earlier one"
                )
            if not 1 <= loop.max_iterations <= MAX_ITERATIONS:
                problems.append(
                    f"{where}: policies.loop.max_iterations must be 1..{MAX_ITERATIONS}, "
                    f"got {loop.max_iterations}"
                )
            if LoopCause.UNSPECIFIED in loop.on:
                problems.append(f"{where}: policies.loop.on has an unknown cause")
            for name in loop.skip:
                at = position.get(name)
                if back is None or at is None or not back < at < i:
                    problems.append(
                        f"{where}: policies.loop.skip {name!r} must name a step between back_to and this one"
                    )
        if (trigger := policies.trigger) is not None:
            if not trigger.agent.strip():
                problems.append(f"{where}: policies.trigger.agent is required")
            if not 0 <= trigger.max_depth <= MAX_TRIGGER_DEPTH:
                problems.append(
                    f"{where}: policies.trigger.max_depth must be 1..{MAX_TRIGGER_DEPTH} (0: "
                    f"{MAX_TRIGGER_DEPTH}), got {trigger.max_depth}"
                )
    return problems


# --- loops --------------------------------------------------------------------------------------------------


def loop_decision(
    state: ProtocolRunState, step: StepState, cause: LoopCause, reason: str
) -> ev.LoopTaken | ev.LoopSpent | None:
    """What ``step``'s loop policy makes of a failure (or a loop directive) for ``cause``: the loop
    taken, its budget spent, or None when the step has no loop on that cause."""
    loop = _loop_of(step)
    if loop is None or cause not in (frozenset(loop.on) or _ALL_CAUSES) or state.is_terminal:
        return None
    limit = min(loop.max_iterations, MAX_ITERATIONS)
    positions = {s.step_run_id: i for i, s in enumerate(state.steps)}
    here = positions[step.step_run_id]
    back = next(
        (i for i, s in enumerate(state.steps) if s.name == (loop.back_to or step.name) and not s.queued_by),
        None,
    )
    if step.loop_iterations >= limit or back is None or back > here:
        return ev.LoopSpent(
            step_run_id=step.step_run_id,
            cause=cause,
            iterations=step.loop_iterations,
            max_iterations=limit,
            reason=reason,
        )
    in_range = state.steps[back : here + 1]
    skip = frozenset(loop.skip)
    return ev.LoopTaken(
        step_run_id=step.step_run_id,
        back_to=state.steps[back].name,
        back_to_step_run_id=state.steps[back].step_run_id,
        cause=cause,
        iteration=step.loop_iterations + 1,
        max_iterations=limit,
        reason=reason,
        reset_step_run_ids=tuple(s.step_run_id for s in in_range if not s.queued_by and s.name not in skip),
        skipped_step_run_ids=tuple(s.step_run_id for s in in_range if not s.queued_by and s.name in skip),
        superseded_step_run_ids=tuple(
            s.step_run_id for s in in_range if s.queued_by and s.status not in DONE_STEP_STATUSES
        ),
    )


def spent_note(spent: ev.LoopSpent) -> str:
    """What a spent loop adds to the reason the run is blocked."""
    return f" (loop spent: taken {spent.iterations} of {spent.max_iterations} time(s))"


def _loop_of(step: StepState) -> StepLoopPolicy | None:
    return step.policies.loop if step.policies is not None else None


# --- after a step completed: trigger, then checkpoint ------------------------------------------------------


def trigger_decision(
    state: ProtocolRunState, step: StepState, new_id: Callable[[], str]
) -> ev.TriggerQueued | ev.TriggerRefused | None:
    """The step a completed ``step`` queues for another agent (its trigger policy, or its agent's
    ``trigger`` directive), refused beyond the chain's depth; None when nothing asks for one. ``new_id``
    names the queued step (called only when one is queued)."""
    policy: StepTriggerPolicy | None = step.policies.trigger if step.policies is not None else None
    directive = step.directive
    asked = directive is not None and directive.action is DirectiveAction.TRIGGER
    if policy is None and not asked:
        return None
    if policy is not None and policy.on_directive_only and not asked:
        return None
    agent = (directive.agent if directive is not None and asked else "") or (policy.agent if policy else "")
    prompt = (directive.prompt if directive is not None and asked else "") or (
        policy.prompt if policy else ""
    )
    depth = step.trigger_depth + 1
    cap = step.trigger_max_depth or (policy.max_depth if policy is not None else 0) or MAX_TRIGGER_DEPTH
    max_depth = min(max(cap, 1), MAX_TRIGGER_DEPTH)
    refusal = ""
    if not agent.strip():
        refusal = "the directive names no agent and the step has no trigger policy"
    elif depth > max_depth:
        refusal = f"a chain of triggers may be {max_depth} deep; this one would be {depth}"
    if refusal:
        return ev.TriggerRefused(
            from_step_run_id=step.step_run_id, agent=agent, depth=depth, max_depth=max_depth, reason=refusal
        )
    index = max(s.index for s in state.steps) + 1
    name = f"{index:02d}-{_SLUG.sub('-', agent.lower()).strip('-') or 'agent'}.md"
    queued = StepPlan(
        step_run_id=new_id(),
        index=index,
        name=name,
        step_type=StepType.WORK,
        engine_id=(policy.engine_id if policy else "") or (step.engine_id if step.queued_by else ""),
        model=(policy.model if policy else "") or (step.model if step.queued_by else ""),
        qa_policy=step.qa_policy,
        qa_engine_id=step.qa_engine_id,
        qa_model=step.qa_model,
        file_path=f"{state.protocol_root}/{name}",
        labels=(agent,),
    )
    return ev.TriggerQueued(
        from_step_run_id=step.step_run_id,
        step=queued,
        agent=agent,
        prompt=prompt.strip() or f"# {agent}\n\nDo {agent}'s part of the work after step {step.name}.",
        depth=depth,
        max_depth=max_depth,
        on_directive=asked,
    )


def checkpoint_decision(state: ProtocolRunState, step: StepState) -> ev.CheckpointReached | None:
    """A stop for a person after a completed ``step`` (its checkpoint policy, or its agent's
    ``checkpoint``/``stop`` directive), when the run has steps not done yet; None otherwise."""
    policy = step.policies.checkpoint if step.policies is not None else None
    directive = step.directive
    asked = directive is not None and directive.action in (DirectiveAction.CHECKPOINT, DirectiveAction.STOP)
    if not asked and (policy is None or policy.on_directive_only):
        return None
    if state.all_steps_done:
        return None  # nothing left to decide on: the run completes
    said = directive.reason if directive is not None and asked else ""
    action = directive.action if directive is not None and asked else DirectiveAction.UNSPECIFIED
    reason = (
        said or (policy.reason if policy is not None else "") or f"the agent asked to {action.name.lower()}"
    )
    return ev.CheckpointReached(step_run_id=step.step_run_id, reason=reason, directive=action)

"""Step policies decided as events: a loop sends the run back on a failure (or the agent's loop directive)
until its budget is spent, a trigger queues another agent's step (a chain at most 3 deep), a checkpoint
stops the run for a person; and no combination of policies, failures and directives runs forever."""

from __future__ import annotations

from typing import TypeVar

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    AgentDirective,
    DirectiveAction,
    LoopCause,
    PrOpening,
    PrPolicy,
    QaVerdict,
    RunMode,
    RunPolicy,
    StepCheckpointPolicy,
    StepLoopPolicy,
    StepPlan,
    StepPolicies,
    StepTriggerPolicy,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunEvent,
    RunStatus,
    StepState,
    StepStatus,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for
from deksdenflow_core.domain.protocol_run.plan import plan_problems
from deksdenflow_core.domain.protocol_run.policies import MAX_TRIGGER_DEPTH
from deksdenflow_core.errors import IllegalTransition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.domain.builders import ctx, new_run, plan_steps

AUTOPILOT = RunPolicy(mode=RunMode.AUTOPILOT)
E = TypeVar("E")


class Driver:
    """An autopilot run driven by worker results; each decision gets ids of its own (as each causing event
    gives them in the system), and every event is kept."""

    def __init__(self, steps: tuple[StepPlan, ...], policy: RunPolicy = AUTOPILOT) -> None:
        self.events: list[ProtocolRunEvent] = []
        self.decisions = 0
        self.run = new_run(run_policy=policy)
        self.do(cmd.StartProtocolRun())
        self.do(cmd.RecordPlanningCompleted(attempt=1, steps=steps))

    def do(self, command: ProtocolRunCommand) -> list[ProtocolRunEvent]:
        self.decisions += 1
        events = decide_protocol_run(self.run, command, ctx(f"decision-{self.decisions}"))
        for e in events:
            self.run = evolve_protocol_run(self.run, e)
        self.events.extend(events)
        return events

    def status(self) -> RunStatus:
        return self.run.status

    def step(self, name: str) -> StepState:
        return next(s for s in self.run.steps if s.name == name)

    def executing(self) -> StepState:
        found = self.run.executing_step
        assert found is not None, f"nothing executes; the run is {self.run.status.value}"
        return found

    def execute(self, directive: AgentDirective | None = None, *, fail: bool = False) -> StepState:
        step = self.executing()
        if fail:
            self.do(
                cmd.RecordStepExecutionFailed(
                    step_run_id=step.step_run_id, attempt=step.attempt, reason="boom"
                )
            )
        else:
            self.do(
                cmd.RecordStepExecutionCompleted(
                    step_run_id=step.step_run_id, attempt=step.attempt, directive=directive, auto_qa=True
                )
            )
        return step

    def qa(self, verdict: QaVerdict = QaVerdict.PASS) -> None:
        step = next(s for s in self.run.steps if s.qa_pending)
        self.do(
            cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=verdict)
        )

    def passes(self, directive: AgentDirective | None = None) -> StepState:
        step = self.execute(directive)
        self.qa()
        return step

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def only(self, kind: type[E]) -> E:
        (found,) = self.of_type(kind)
        return found


def _plan(n: int, **policies: StepPolicies) -> tuple[StepPlan, ...]:
    """``n`` steps; ``policies`` by step file name."""
    return tuple(s.model_copy(update={"policies": policies.get(s.name)}) for s in plan_steps(n))


def _loop(back_to: str, max_iterations: int, *on: LoopCause, skip: tuple[str, ...] = ()) -> StepPolicies:
    return StepPolicies(loop=StepLoopPolicy(back_to=back_to, on=on, max_iterations=max_iterations, skip=skip))


# --- loops --------------------------------------------------------------------------------------------


def test_a_qa_failure_takes_the_loop_back_until_spent_then_blocks_the_run_saying_so() -> None:
    d = Driver(_plan(4, **{"03-work-3.md": _loop("01-work-1.md", 2, LoopCause.QA_FAILED)}))
    d.passes()  # 00
    for iteration in (1, 2):
        d.passes()  # 01
        d.passes()  # 02
        d.execute()  # 03
        d.qa(QaVerdict.FAIL)
        taken = d.of_type(ev.LoopTaken)[-1]
        assert (taken.iteration, taken.max_iterations, taken.cause) == (iteration, 2, LoopCause.QA_FAILED)
        assert taken.back_to == "01-work-1.md"
        assert [d.step(n).status for n in ("02-work-2.md", "03-work-3.md")] == [StepStatus.PENDING] * 2
        assert d.step("01-work-1.md").executing, "autopilot runs the loop's first step again"
        assert d.step("01-work-1.md").attempt == iteration, "each pass is a new attempt"
        assert d.status() is RunStatus.RUNNING
    d.passes()
    d.passes()
    d.execute()
    d.qa(QaVerdict.FAIL)
    assert d.only(ev.LoopSpent).iterations == 2
    assert d.status() is RunStatus.BLOCKED
    assert "loop spent: taken 2 of 2" in d.run.blocked_reason
    assert d.step("03-work-3.md").loop_iterations == 2


def test_a_failure_the_loop_is_not_on_blocks_at_once() -> None:
    d = Driver(_plan(2, **{"01-work-1.md": _loop("01-work-1.md", 3, LoopCause.QA_FAILED)}))
    d.passes()
    d.execute(fail=True)
    assert d.status() is RunStatus.BLOCKED
    assert not d.of_type(ev.LoopTaken)
    assert not d.of_type(ev.LoopSpent)


def test_skipped_steps_are_left_as_they_are_and_an_execution_failure_loops_by_default() -> None:
    d = Driver(_plan(4, **{"03-work-3.md": _loop("01-work-1.md", 1, skip=("02-work-2.md",))}))
    for _ in range(3):
        d.passes()
    d.execute(fail=True)
    taken = d.only(ev.LoopTaken)
    assert taken.cause is LoopCause.EXECUTION_FAILED
    assert d.step("02-work-2.md").status is StepStatus.COMPLETED
    assert taken.skipped_step_run_ids == (d.step("02-work-2.md").step_run_id,)
    d.passes()  # 01 again, then 03 (02 skipped)
    assert d.executing().name == "03-work-3.md"


def test_the_agents_loop_directive_takes_the_loop_without_qa_and_is_ignored_once_spent() -> None:
    d = Driver(_plan(3, **{"02-work-2.md": _loop("01-work-1.md", 1, LoopCause.DIRECTIVE)}))
    d.passes()
    d.passes()
    loop = AgentDirective(action=DirectiveAction.LOOP, reason="tests still red")
    d.execute(loop)
    assert "tests still red" in d.only(ev.LoopTaken).reason
    assert not d.step("02-work-2.md").qa_pending
    d.passes()
    d.execute(loop)
    assert d.of_type(ev.LoopSpent), "spent: recorded, and the step goes on to its QA"
    assert d.step("02-work-2.md").qa_pending


# --- triggers -----------------------------------------------------------------------------------------


def test_a_trigger_queues_the_agents_step_next_and_a_chain_stops_at_its_depth() -> None:
    trigger = StepTriggerPolicy(agent="Reviewer", prompt="Review the change.", max_depth=2)
    d = Driver(_plan(3, **{"01-work-1.md": StepPolicies(trigger=trigger)}))
    d.passes()
    d.passes()  # 01 completes: its trigger queues the reviewer's step right after it
    assert d.only(ev.TriggerQueued).depth == 1
    assert [s.name for s in d.run.steps] == ["00-setup.md", "01-work-1.md", "03-reviewer.md", "02-work-2.md"]
    first = d.executing()
    assert (first.name, first.prompt, first.index) == ("03-reviewer.md", "Review the change.", 3)
    # the triggered agent asks for another step, which asks again: the third is beyond max_depth 2
    again = AgentDirective(action=DirectiveAction.TRIGGER, agent="fixer", prompt="Fix it.")
    d.passes(again)
    second = d.executing()
    assert (second.name, second.trigger_depth, second.queued_by) == ("04-fixer.md", 2, first.step_run_id)
    assert second.run_order == (1, 3, 4)
    d.passes(again)
    refused = d.only(ev.TriggerRefused)
    assert (refused.depth, refused.max_depth) == (3, 2)
    assert d.executing().name == "02-work-2.md"


def test_a_trigger_on_directive_only_waits_for_the_directive_and_depth_is_capped_at_three() -> None:
    trigger = StepTriggerPolicy(agent="helper", on_directive_only=True, max_depth=3)
    d = Driver(_plan(2, **{"01-work-1.md": StepPolicies(trigger=trigger)}))
    d.passes()
    d.passes()
    assert not d.of_type(ev.TriggerQueued)
    assert d.status() is not RunStatus.BLOCKED


def test_a_chain_of_triggers_never_goes_deeper_than_three() -> None:
    d = Driver(_plan(2))
    d.passes()
    again = AgentDirective(action=DirectiveAction.TRIGGER, agent="helper")
    for _ in range(MAX_TRIGGER_DEPTH + 1):
        d.passes(again)
    assert [e.depth for e in d.of_type(ev.TriggerQueued)] == [1, 2, 3]
    assert len(d.of_type(ev.TriggerRefused)) == 1


# --- checkpoints and directives -----------------------------------------------------------------------


def test_a_checkpoint_stops_the_run_until_a_person_continues() -> None:
    checkpoint = StepPolicies(checkpoint=StepCheckpointPolicy(reason="look at the schema first"))
    d = Driver(_plan(3, **{"01-work-1.md": checkpoint}))
    d.passes()
    with pytest.raises(IllegalTransition):
        d.do(cmd.ContinueProtocolRun())
    d.passes()
    assert d.status() is RunStatus.BLOCKED
    assert waiting_for(d.run) == "checkpoint"
    assert "look at the schema first" in d.run.blocked_reason
    assert d.run.executing_step is None
    with pytest.raises(IllegalTransition):
        d.do(cmd.RunNextStep())
    d.do(cmd.ContinueProtocolRun(reason="schema is fine"))
    assert [type(e).__name__ for e in d.events[-2:]] == ["CheckpointPassed", "StepExecutionRequested"]
    assert d.status() is RunStatus.RUNNING
    assert d.executing().name == "02-work-2.md"


def test_a_step_of_a_parallel_group_done_meanwhile_leaves_the_run_at_its_checkpoint() -> None:
    plans = tuple(
        s.model_copy(update={"parallel_group": "g" if s.index else ""}) for s in _plan(3, **{
            "01-work-1.md": StepPolicies(checkpoint=StepCheckpointPolicy(reason="look")),
        })
    )  # fmt: skip
    never = PrPolicy(open=PrOpening.NEVER)
    d = Driver(plans, RunPolicy(mode=RunMode.AUTOPILOT, max_parallel_steps=2, pr=never))
    d.passes()
    first, second = (d.step(n) for n in ("01-work-1.md", "02-work-2.md"))
    assert first.executing
    assert second.executing
    for step in (first, second):
        d.do(cmd.RecordStepExecutionCompleted(step_run_id=step.step_run_id, attempt=0, auto_qa=True))
        d.qa()
    assert d.status() is RunStatus.BLOCKED
    assert waiting_for(d.run) == "checkpoint"
    events = d.do(cmd.ContinueProtocolRun())
    assert [type(e).__name__ for e in events] == ["CheckpointPassed", "ProtocolRunCompleted"]


def test_directives_stop_error_and_pause_act_on_the_run() -> None:
    d = Driver(_plan(4))
    d.passes(AgentDirective(action=DirectiveAction.STOP, reason="need a human"))
    assert d.only(ev.CheckpointReached).directive is DirectiveAction.STOP
    d.do(cmd.ContinueProtocolRun())
    d.execute(AgentDirective(action=DirectiveAction.PAUSE))
    assert d.status() is RunStatus.PAUSED
    d.do(cmd.ResumeProtocolRun())
    d.qa()
    d.execute(AgentDirective(action=DirectiveAction.ERROR, reason="cannot reach the database"))
    assert d.status() is RunStatus.BLOCKED
    assert "cannot reach the database" in d.run.blocked_reason


def test_an_invalid_directive_is_recorded_and_not_taken() -> None:
    d = Driver(_plan(2))
    step = d.executing()
    events = d.do(
        cmd.RecordStepExecutionCompleted(
            step_run_id=step.step_run_id,
            attempt=0,
            directive_error="action: 'explode' is not one of",
            auto_qa=True,
        )
    )
    assert [type(e).__name__ for e in events] == [
        "StepExecutionCompleted",
        "DirectiveRejected",
        "QaRequested",
    ]


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "problem"),
    [
        (_loop("03-work-3.md", 2), "must name this step or an earlier one"),
        (_loop("01-work-1.md", 0), "max_iterations must be 1..20"),
        (_loop("01-work-1.md", 21), "max_iterations must be 1..20"),
        (_loop("01-work-1.md", 2, skip=("01-work-1.md",)), "must name a step between back_to and this one"),
        (StepPolicies(trigger=StepTriggerPolicy(agent="x", max_depth=4)), "max_depth must be 1..3"),
        (StepPolicies(trigger=StepTriggerPolicy(agent=" ")), "trigger.agent is required"),
    ],
)
def test_invalid_policies_are_named_by_step_and_field(policies: StepPolicies, problem: str) -> None:
    problems = plan_problems(_plan(4, **{"02-work-2.md": policies}))
    (only,) = problems
    assert only.startswith("step 2 (02-work-2.md): policies.")
    assert problem in only


def test_valid_policies_pass() -> None:
    assert not plan_problems(_plan(4, **{"03-work-3.md": _loop("01-work-1.md", 20, skip=("02-work-2.md",))}))


# --- no policy runs forever ---------------------------------------------------------------------------

_ACTIONS = [None, None, DirectiveAction.TRIGGER, DirectiveAction.LOOP, *DirectiveAction]
_CAUSES = [(), (LoopCause.EXECUTION_FAILED,), (LoopCause.QA_FAILED,), (LoopCause.DIRECTIVE,)]
# Failed steps a person retries in one example (each retry is one more execution of a planned step).
_RETRIES = 2


@st.composite
def _policies(draw: st.DrawFn, index: int) -> StepPolicies | None:
    if index == 0:
        return None
    loop = trigger = checkpoint = None
    if draw(st.integers(0, 3)):
        back = draw(st.integers(1, index))
        between = [f"{i:02d}-work-{i}.md" for i in range(back + 1, index)]
        loop = StepLoopPolicy(
            back_to=f"{back:02d}-work-{back}.md",
            on=draw(st.sampled_from(_CAUSES)),
            max_iterations=draw(st.integers(1, 3)),
            skip=tuple(draw(st.sets(st.sampled_from(between))) if between else ()),
        )
    if draw(st.booleans()):
        trigger = StepTriggerPolicy(
            agent="helper", on_directive_only=draw(st.booleans()), max_depth=draw(st.integers(0, 3))
        )
    if draw(st.booleans()):
        checkpoint = StepCheckpointPolicy(on_directive_only=draw(st.booleans()))
    return StepPolicies(loop=loop, trigger=trigger, checkpoint=checkpoint)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 5), st.data())
def test_no_combination_of_policies_failures_and_directives_runs_forever(n: int, data: st.DataObject) -> None:
    """Workers report any mix of failures, QA verdicts and directives; a person continues every checkpoint,
    resumes every pause and retries failed steps a few times: the run still ends, or waits for a person,
    within the bound its policies set."""
    plans = tuple(s.model_copy(update={"policies": data.draw(_policies(s.index))}) for s in plan_steps(n))
    assert not plan_problems(plans)
    d = Driver(plans)
    # Each planned step runs once, plus once per loop taken (a loop resets at most n steps) and per retry;
    # each of those executions may queue a chain of at most 3 triggered steps.
    loops = sum(p.policies.loop.max_iterations for p in plans if p.policies and p.policies.loop)
    bound = (n * (1 + loops) + _RETRIES) * (1 + MAX_TRIGGER_DEPTH)
    executions = retries = 0
    while not d.run.is_terminal:
        if d.status() is RunStatus.PAUSED:
            d.do(cmd.ResumeProtocolRun())
        elif d.run.checkpoint_step:
            d.do(cmd.ContinueProtocolRun())
        elif d.run.executing_step is not None:
            executions += 1
            assert executions <= bound, f"more than {bound} executions: the policies loop"
            action = data.draw(st.sampled_from(_ACTIONS))
            directive = AgentDirective(action=action, agent="helper") if action else None
            d.execute(directive, fail=data.draw(st.sampled_from([False, False, True])))
        elif any(s.qa_pending for s in d.run.steps):
            d.qa(data.draw(st.sampled_from([QaVerdict.PASS, QaVerdict.PASS, QaVerdict.FAIL])))
        elif d.status() is RunStatus.BLOCKED and retries < _RETRIES:
            retries += 1
            d.do(cmd.RetryLatestStep())
        else:
            break  # nothing asked of a worker: the run waits for a person (a failure stands) or its PR
    done = all(s.status in (StepStatus.COMPLETED, StepStatus.CANCELLED) for s in d.run.steps)
    assert d.run.is_terminal or d.status() is RunStatus.BLOCKED or done

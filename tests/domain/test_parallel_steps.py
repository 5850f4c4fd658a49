"""Steps of a parallel group (spec-kit's [P] tasks, imported as steps) execute at once on autopilot, as
many as the run policy's ``max_parallel_steps``; everything else still runs one step at a time."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    QaVerdict,
    RunMode,
    RunPolicy,
    StepPlan,
)
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepStatus
from deksdenflow_core.domain.protocol_run.plan import spec_hash
from deksdenflow_core.errors import InvalidCommand

from tests.domain.builders import apply, new_run, plan_steps

# steps 0 setup, 1-3 group "g", 4 alone
GROUPS = ("", "g", "g", "g", "")


def _planned(max_parallel: int | None, mode: RunMode = RunMode.AUTOPILOT) -> ProtocolRunState:
    policy = RunPolicy(mode=mode, max_parallel_steps=max_parallel)
    steps = tuple(
        s.model_copy(update={"parallel_group": g}) for s, g in zip(plan_steps(5), GROUPS, strict=True)
    )
    run = apply(new_run(run_policy=policy), cmd.StartProtocolRun())
    return apply(run, cmd.RecordPlanningCompleted(attempt=1, steps=steps))


def _executing(run: ProtocolRunState) -> list[int]:
    return [s.index for s in run.steps if s.executing]


def _finish(run: ProtocolRunState, index: int, verdict: QaVerdict = QaVerdict.PASS) -> ProtocolRunState:
    step = run.steps[index]
    run = apply(
        run,
        cmd.RecordStepExecutionCompleted(
            step_run_id=step.step_run_id, attempt=step.attempt, commit_sha=f"sha-{index}"
        ),
    )
    step = run.steps[index]
    return apply(
        run, cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=verdict)
    )


def test_a_group_executes_up_to_the_policy_s_limit_and_the_next_step_waits_for_all_of_it() -> None:
    run = _finish(_planned(2), 0)
    assert _executing(run) == [1, 2], "two of the group's three steps start together"
    run = _finish(run, 2)
    assert _executing(run) == [1, 3], "a finished member's place goes to the group's next step"
    run = _finish(run, 1)
    assert _executing(run) == [3], "the step after the group waits for the whole group"
    run = _finish(run, 3)
    assert _executing(run) == [4]
    run = _finish(run, 4)
    assert all(s.status is StepStatus.COMPLETED for s in run.steps)


def test_a_member_s_execution_done_and_in_qa_frees_its_place() -> None:
    run = _finish(_planned(2), 0)
    step = run.steps[1]
    run = apply(
        run,
        cmd.RecordStepExecutionCompleted(step_run_id=step.step_run_id, attempt=step.attempt, commit_sha="s1"),
    )
    assert run.steps[1].qa_pending
    assert _executing(run) == [2, 3]


def test_a_failed_member_holds_the_rest_of_the_run_back() -> None:
    run = _finish(_planned(2), 0)
    run = _finish(run, 1, QaVerdict.FAIL)  # its execution finishing let step 3 start, then QA failed it
    assert run.steps[1].status is StepStatus.FAILED
    assert _executing(run) == [2, 3], "the members in flight finish"
    run = _finish(_finish(run, 2), 3)
    assert _executing(run) == [], "nothing after the group starts while a member failed"
    assert run.steps[4].status is StepStatus.PENDING
    assert run.status is RunStatus.BLOCKED


@pytest.mark.parametrize(
    ("limit", "mode"), [(None, RunMode.AUTOPILOT), (1, RunMode.AUTOPILOT), (4, RunMode.MANUAL)]
)
def test_without_a_limit_above_one_on_autopilot_a_group_runs_one_step_at_a_time(
    limit: int | None, mode: RunMode
) -> None:
    run = _planned(limit, mode)
    if mode is RunMode.MANUAL:
        assert run_policy.parallel_steps(run.run_policy) == 1
        return
    run = _finish(run, 0)
    assert _executing(run) == [1]
    run = _finish(run, 1)
    assert _executing(run) == [2]


@pytest.mark.parametrize("bad", [0, 9, -1])
def test_the_limit_is_between_one_and_eight(bad: int) -> None:
    with pytest.raises(InvalidCommand) as raised:
        run_policy.resolve(None, RunPolicy(max_parallel_steps=bad))
    assert raised.value.fields["field"] == "run_policy.max_parallel_steps"


def test_a_step_s_group_is_part_of_the_plan_s_hash_only_when_set() -> None:
    plain = plan_steps(3)
    assert spec_hash(plain) == spec_hash(tuple(StepPlan(**s.model_dump()) for s in plain))
    grouped = tuple(s.model_copy(update={"parallel_group": "g"}) for s in plain)
    assert spec_hash(grouped) != spec_hash(plain)

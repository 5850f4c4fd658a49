"""Rules of the ProtocolRun aggregate, including the first version's defects 4, 5 and 8."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    CiStatus,
    CompletionVia,
    ExecutionReason,
    QaPolicy,
    QaReason,
    QaVerdict,
    StepPlan,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import (
    MAX_PUSH_ANCESTORS,
    RunStatus,
    StepStatus,
    decide_protocol_run,
)
from deksdenflow_core.errors import IllegalTransition, InvalidCommand, NotFound

from tests.domain.builders import apply, ctx, new_run, plan_steps, planned_run


def test_start_requests_planning_and_plan_creates_pending_steps() -> None:
    run = apply(new_run(), cmd.StartProtocolRun())
    assert run.status is RunStatus.PLANNING
    assert run.planning_attempt == 1
    run = apply(run, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(3)))
    assert run.status is RunStatus.PLANNED
    assert [s.status for s in run.steps] == [StepStatus.PENDING] * 3
    assert len({s.step_run_id for s in run.steps}) == 3
    assert len(run.spec_hash) == 12


def test_the_plan_records_its_prompts_versions_and_what_decomposition_did() -> None:
    run = apply(new_run(), cmd.StartProtocolRun())
    command = cmd.RecordPlanningCompleted(
        attempt=1, steps=plan_steps(3), prompt_version="aaaaaaaaaaaa", engine_id="codex", model="m",
        decompose_prompt_version="bbbbbbbbbbbb", steps_refined=1, steps_kept_as_planned=1,
    )  # fmt: skip
    (event,) = decide_protocol_run(run, command, ctx())
    assert isinstance(event, ev.PlanningCompleted)
    assert (event.prompt_version, event.engine_id, event.model) == ("aaaaaaaaaaaa", "codex", "m")
    assert (event.decompose_prompt_version, event.steps_refined, event.steps_kept_as_planned) == (
        "bbbbbbbbbbbb",
        1,
        1,
    )


def test_invalid_plan_never_marks_the_run_planned() -> None:  # defect 4
    run = apply(new_run(), cmd.StartProtocolRun())
    bad = (
        StepPlan(index=0, name="plan.md", step_type=StepType.WORK),
        StepPlan(index=2, name="x", step_type=StepType.UNSPECIFIED),
    )
    events = decide_protocol_run(run, cmd.RecordPlanningCompleted(attempt=1, steps=bad), ctx())
    assert len(events) == 1
    assert isinstance(events[0], ev.PlanningFailed)
    assert "invalid plan" in events[0].reason
    failed = apply(run, cmd.RecordPlanningCompleted(attempt=1, steps=bad))
    assert failed.status is RunStatus.FAILED
    assert failed.steps == ()
    # A failed planning can be started again (re-plan), as attempt 2.
    assert apply(failed, cmd.StartProtocolRun()).planning_attempt == 2


def test_duplicate_and_stale_planning_results_change_nothing() -> None:
    run = planned_run()
    assert decide_protocol_run(run, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(2)), ctx()) == []
    with pytest.raises(InvalidCommand):
        decide_protocol_run(run, cmd.RecordPlanningFailed(attempt=7, reason="?"), ctx())


def test_execution_ends_in_needs_qa_and_qa_pass_completes_the_step() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    step = run.steps[0]
    assert (run.status, step.status) == (RunStatus.RUNNING, StepStatus.RUNNING)
    run = apply(
        run, cmd.RecordStepExecutionCompleted(step_run_id=step.step_run_id, summary="done", commit_sha="abc")
    )
    assert run.steps[0].status is StepStatus.NEEDS_QA
    run = apply(run, cmd.RunStepQa(step_run_id=step.step_run_id))
    run = apply(run, cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=1, verdict=QaVerdict.PASS))
    assert run.steps[0].status is StepStatus.COMPLETED
    assert run.status is RunStatus.RUNNING


def test_qa_is_fail_closed_and_a_fail_blocks_the_run() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, auto_qa=True))
    assert run.steps[0].qa_pending
    events = decide_protocol_run(run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1), ctx())
    assert isinstance(events[0], ev.QaVerdictRecorded)
    assert events[0].verdict is QaVerdict.FAIL
    run = apply(run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1))
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.FAILED)


def test_a_step_whose_qa_cannot_run_is_blocked_and_can_be_run_again() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, auto_qa=True, commit_sha="c1"))
    assert run.steps[0].status is StepStatus.NEEDS_QA
    run = apply(run, cmd.RecordStepBlocked(step_run_id=sid, reason="protocol branch lost"))
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.BLOCKED)
    assert run.blocked_reason == "protocol branch lost"
    assert not run.steps[0].qa_pending, "no QA is awaited for a blocked step"
    assert decide_protocol_run(run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1), ctx()) == []
    run = apply(run, cmd.RetryLatestStep())
    assert (run.status, run.steps[0].status) == (RunStatus.RUNNING, StepStatus.RUNNING)


def test_a_failed_step_whose_qa_again_cannot_run_is_blocked() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, auto_qa=True, commit_sha="c1"))
    run = apply(run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1))
    run = apply(run, cmd.RunStepQa(step_run_id=sid))
    assert (run.steps[0].status, run.steps[0].qa_pending) == (StepStatus.FAILED, True)
    run = apply(run, cmd.RecordStepBlocked(step_run_id=sid, reason="protocol branch lost"))
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.BLOCKED)
    assert not run.steps[0].qa_pending


def test_a_parallel_group_s_earlier_push_recorded_late_leaves_the_branch_head_on_the_later_one() -> None:
    run = apply(planned_run(2), cmd.RecordBranchPushed(branch="0001-x", commit_sha="p", ancestors=("b",)))
    # the group's three steps pushed h1, then h2 onto it, then h3 onto h2: recorded h3, h1, h2
    h3 = cmd.RecordBranchPushed(branch="0001-x", commit_sha="h3", ancestors=("h2", "h1", "p", "b"))
    assert decide_protocol_run(run, h3, ctx()) == [
        ev.BranchPushed(branch="0001-x", commit_sha="h3", ancestors=("h2", "h1", "p", "b"))
    ]
    run = apply(run, h3)
    run = apply(run, cmd.RecordBranchPushed(branch="0001-x", commit_sha="h1", ancestors=("p", "b")))
    run = apply(run, cmd.RecordBranchPushed(branch="0001-x", commit_sha="h2", ancestors=("h1", "p")))
    assert run.branch_head_sha == "h3"
    assert run.branch_commits == {"b", "p", "h1", "h2", "h3"}
    # recorded again (a redelivered result): nothing moves
    again = cmd.RecordBranchPushed(branch="0001-x", commit_sha="h3", ancestors=("h2", "h1", "p", "b"))
    assert apply(run, again).branch_head_sha == "h3"
    # one push's result held back while twenty pushes went on over it: still known for an earlier one
    chain = ["h3", *(f"c{i}" for i in range(1, 21))]
    late = cmd.RecordBranchPushed(branch="0001-x", commit_sha="c1", ancestors=("h3",))
    for i in range(2, 21):
        nearest = tuple(reversed(chain[max(0, i - MAX_PUSH_ANCESTORS) : i]))
        run = apply(run, cmd.RecordBranchPushed(branch="0001-x", commit_sha=f"c{i}", ancestors=nearest))
    assert apply(run, late).branch_head_sha == "c20"
    # a push onto the head moves it; so does one recorded before pushes named their ancestors
    run = apply(run, cmd.RecordBranchPushed(branch="0001-x", commit_sha="h4", ancestors=("c20",)))
    assert run.branch_head_sha == "h4"
    assert apply(run, cmd.RecordBranchPushed(branch="0001-x", commit_sha="h5")).branch_head_sha == "h5"
    # only so many ancestors are kept in the log
    many = tuple(f"a{i}" for i in range(40))
    event = decide_protocol_run(
        run, cmd.RecordBranchPushed(branch="0001-x", commit_sha="h6", ancestors=many), ctx()
    )[0]
    assert isinstance(event, ev.BranchPushed)
    assert event.ancestors == many[:MAX_PUSH_ANCESTORS]


def test_a_restored_branch_is_recorded_with_what_the_remote_had() -> None:
    run = apply(planned_run(2), cmd.RecordBranchPushed(branch="0001-x", commit_sha="h1"))
    restored = cmd.RecordBranchRestored(branch="0001-x", commit_sha="h1", found_sha="base")
    events = decide_protocol_run(run, restored, ctx())
    assert events == [ev.BranchRestored(branch="0001-x", commit_sha="h1", found_sha="base")]
    assert apply(run, restored).branch_head_sha == "h1"


def test_a_failed_try_does_not_fail_the_step_and_a_retry_counts() -> None:  # defect 8
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepAttemptFailed(step_run_id=sid, attempt=0, try_number=1, reason="timeout"))
    assert (run.status, run.steps[0].status) == (RunStatus.RUNNING, StepStatus.RUNNING)
    run = apply(run, cmd.RecordStepExecutionFailed(step_run_id=sid, attempt=0, reason="exhausted"))
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.FAILED)
    run = apply(run, cmd.RetryLatestStep())
    assert (run.status, run.steps[0].status, run.steps[0].retries) == (
        RunStatus.RUNNING,
        StepStatus.RUNNING,
        1,
    )
    # The old attempt's late result is ignored; the new one counts.
    assert decide_protocol_run(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, attempt=0), ctx()) == []
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, attempt=1))
    assert run.steps[0].status is StepStatus.NEEDS_QA


def test_last_step_done_completes_the_run() -> None:
    run = planned_run(2, qa=QaPolicy.SKIP)
    for _ in range(2):
        run = apply(run, cmd.RunNextStep())
        sid = next(s for s in run.steps if s.executing).step_run_id
        run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid))
    assert all(s.status is StepStatus.COMPLETED for s in run.steps)
    assert run.status is RunStatus.COMPLETED


def test_cancel_cascades_to_open_steps_and_never_overwrites_completed() -> None:  # defect 5
    run = planned_run(3, qa=QaPolicy.SKIP)
    run = apply(run, cmd.RunNextStep())
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=run.steps[0].step_run_id))
    run = apply(run, cmd.RunNextStep())
    run = apply(run, cmd.CancelProtocolRun(reason="enough"))
    assert run.status is RunStatus.CANCELLED
    assert [s.status for s in run.steps] == [StepStatus.COMPLETED, StepStatus.CANCELLED, StepStatus.CANCELLED]
    with pytest.raises(IllegalTransition) as info:
        decide_protocol_run(run, cmd.CancelProtocolRun(), ctx())
    assert info.value.current_status == "cancelled"


def test_completed_run_cannot_be_cancelled() -> None:  # defect 5
    run = planned_run(1, qa=QaPolicy.SKIP)
    run = apply(run, cmd.RunNextStep())
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=run.steps[0].step_run_id))
    assert run.status is RunStatus.COMPLETED
    with pytest.raises(IllegalTransition) as info:
        decide_protocol_run(run, cmd.CancelProtocolRun(), ctx())
    assert info.value.current_status == "completed"


def test_workers_results_are_rejected_after_cancel() -> None:  # defect 5
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.CancelProtocolRun())
    with pytest.raises(IllegalTransition):
        decide_protocol_run(run, cmd.RecordStepExecutionCompleted(step_run_id=sid), ctx())
    with pytest.raises(IllegalTransition):
        decide_protocol_run(run, cmd.RecordCiReport(head_sha="abc", status=CiStatus.SUCCESS), ctx())


def test_pause_stops_new_work_but_keeps_results_of_work_in_flight() -> None:  # defect 5
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.PauseProtocolRun())
    for command in (
        cmd.RunNextStep(),
        cmd.RunStep(step_run_id=run.steps[1].step_run_id),
        cmd.OpenPullRequest(),
    ):
        with pytest.raises(IllegalTransition) as info:
            decide_protocol_run(run, command, ctx())
        assert info.value.current_status == "paused"
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, auto_qa=True))
    assert (run.status, run.steps[0].status, run.steps[0].qa_pending) == (
        RunStatus.PAUSED,
        StepStatus.NEEDS_QA,
        False,
    )
    run = apply(run, cmd.ResumeProtocolRun())
    assert run.status is RunStatus.RUNNING


def test_resume_requests_again_the_work_a_pause_interrupted() -> None:
    # Workers stop the agent on pause and drop the job; resume must ask for the work again.
    run = apply(planned_run(2), cmd.RunNextStep())
    step = run.steps[0]
    run = apply(run, cmd.RecordStepExecutionStarted(step_run_id=step.step_run_id, worker_id="w1"))
    run = apply(run, cmd.PauseProtocolRun())
    events = decide_protocol_run(run, cmd.ResumeProtocolRun(), ctx())
    assert events == [
        ev.ProtocolRunResumed(),
        ev.StepExecutionRequested(
            step_run_id=step.step_run_id, attempt=step.attempt, reason=ExecutionReason.RESUME
        ),
    ]
    resumed = apply(run, cmd.ResumeProtocolRun())
    assert (resumed.steps[0].executing, resumed.steps[0].owner, resumed.steps[0].retries) == (True, "", 0)

    # QA in flight: a new QA attempt, so a verdict of the interrupted one is stale.
    done = apply(resumed, cmd.RecordStepExecutionCompleted(step_run_id=step.step_run_id, auto_qa=True))
    qa_attempt = done.steps[0].qa_attempt
    paused = apply(done, cmd.PauseProtocolRun())
    events = decide_protocol_run(paused, cmd.ResumeProtocolRun(), ctx())
    assert events[1] == ev.QaRequested(
        step_run_id=step.step_run_id, qa_attempt=qa_attempt + 1, policy=QaPolicy.FULL, reason=QaReason.RESUME
    )

    # Planning interrupted: a new planning attempt.
    planning = apply(new_run(), cmd.StartProtocolRun())
    paused = apply(planning, cmd.PauseProtocolRun())
    events = decide_protocol_run(paused, cmd.ResumeProtocolRun(), ctx())
    assert events == [ev.ProtocolRunResumed(), ev.PlanningRequested(attempt=planning.planning_attempt + 1)]

    # Nothing in flight: resume only resumes.
    idle = apply(planned_run(2), cmd.PauseProtocolRun())
    assert decide_protocol_run(idle, cmd.ResumeProtocolRun(), ctx()) == [ev.ProtocolRunResumed()]


def test_approve_is_guarded_by_the_step_status() -> None:  # defect 5
    run = planned_run(2)
    with pytest.raises(IllegalTransition) as info:
        decide_protocol_run(run, cmd.ApproveStep(step_run_id=run.steps[0].step_run_id), ctx())
    assert info.value.current_status == "pending"
    with pytest.raises(NotFound):
        decide_protocol_run(run, cmd.ApproveStep(step_run_id="nope"), ctx())


def test_open_pr_is_guarded_and_idempotent_by_state() -> None:  # defect 5
    with pytest.raises(IllegalTransition):
        decide_protocol_run(new_run(), cmd.OpenPullRequest(), ctx())
    run = apply(planned_run(), cmd.OpenPullRequest())
    with pytest.raises(IllegalTransition):
        decide_protocol_run(run, cmd.OpenPullRequest(), ctx())
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, provider=CiProvider.GITHUB, number=7, url="u"))
    assert decide_protocol_run(run, cmd.RecordPullRequestOpened(attempt=1, number=7, url="u"), ctx()) == []


def test_ci_result_applies_to_the_step_whose_commit_ran() -> None:
    run = planned_run(3)
    shas = {}
    for i in range(2):
        run = apply(run, cmd.RunNextStep())
        sid = run.steps[i].step_run_id
        shas[i] = f"sha{i}"
        run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, commit_sha=shas[i]))
        if i == 0:
            run = apply(run, cmd.ApproveStep(step_run_id=sid))
    # CI fails for step 0's commit although step 1 was updated last.
    run = apply(run, cmd.RecordCiReport(head_sha="sha1", status=CiStatus.SUCCESS, delivery_id="d1"))
    assert run.steps[1].status is StepStatus.COMPLETED
    run = apply(
        run,
        cmd.RecordCiReport(
            head_sha="sha0", status=CiStatus.FAILURE, raw_status="timed_out", delivery_id="d2"
        ),
    )
    assert (run.steps[0].status, run.status) == (StepStatus.FAILED, RunStatus.BLOCKED)
    # The same delivery again changes nothing.
    assert (
        decide_protocol_run(
            run, cmd.RecordCiReport(head_sha="sha0", status=CiStatus.SUCCESS, delivery_id="d2"), ctx()
        )
        == []
    )


def test_pr_merge_completes_the_run_and_cancels_open_steps() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    events = decide_protocol_run(run, cmd.RecordPullRequestMerged(number=3), ctx())
    assert isinstance(events[-1], ev.ProtocolRunCompleted)
    run = apply(run, cmd.RecordPullRequestMerged(number=3))
    assert run.status is RunStatus.COMPLETED
    assert {s.status for s in run.steps} == {StepStatus.CANCELLED}


def test_usage_is_counted_once_per_call_even_after_the_run_ended() -> None:
    run = apply(planned_run(1), cmd.CancelProtocolRun())
    usage = cmd.RecordUsage(call_id="c1", cost_micro_usd=250)
    run = apply(run, usage)
    assert decide_protocol_run(run, usage, ctx()) == []
    assert run.cost_micro_usd == 250


def test_manual_approval_is_recorded_as_such() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid))
    events = decide_protocol_run(run, cmd.ApproveStep(step_run_id=sid), ctx())
    assert events == [ev.StepCompleted(step_run_id=sid, via=CompletionVia.MANUAL_APPROVE)]


def test_only_one_step_executes_at_a_time() -> None:
    run = apply(planned_run(3), cmd.RunNextStep())
    with pytest.raises(IllegalTransition, match="finish it first"):
        decide_protocol_run(run, cmd.RunStep(step_run_id=run.steps[2].step_run_id), ctx())

"""CI on a protocol run: the fix loop and its budget, requeue of lost work, CI during execution."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    CiProvider,
    CiStatus,
    ExecutionReason,
    FailureSource,
    QaReason,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepStatus, decide_protocol_run
from deksdenflow_core.errors import IllegalTransition

from tests.domain.builders import apply, ctx, new_run, planned_run


def _executed(sha: str = "sha-a") -> ProtocolRunState:
    run = apply(planned_run(2), cmd.RunNextStep())
    return apply(run, cmd.RecordStepExecutionCompleted(step_run_id=run.steps[0].step_run_id, commit_sha=sha))


def _failure(sha: str, delivery: str, fix_attempts: int = 2) -> cmd.RecordCiReport:
    return cmd.RecordCiReport(
        provider=CiProvider.GITHUB,
        status=CiStatus.FAILURE,
        raw_status="failure",
        head_sha=sha,
        run_url=f"https://ci/{delivery}",
        delivery_id=delivery,
        fix_attempts=fix_attempts,
    )


def _evidence(attempt: int, sha: str) -> CiFailureEvidence:
    return CiFailureEvidence(
        head_sha=sha, job_name="test", log_excerpt="E   assert 1 == 2", fix_attempt=attempt
    )


def test_a_ci_failure_within_budget_requests_a_fix_instead_of_blocking() -> None:
    run = _executed()
    step_id = run.steps[0].step_run_id
    events = decide_protocol_run(run, _failure("sha-a", "d1"), ctx())
    assert [type(e) for e in events] == [ev.CiReported, ev.StepFailed, ev.CiFixRequested]
    run = apply(run, _failure("sha-a", "d1"))
    assert run.status is RunStatus.RUNNING
    assert (run.steps[0].status, run.steps[0].ci_fix_attempts, run.steps[0].ci_fix_pending) == (
        StepStatus.FAILED,
        1,
        True,
    )
    # Nothing else may start while the fix is being prepared.
    with pytest.raises(IllegalTransition, match="CI fix"):
        decide_protocol_run(run, cmd.RetryLatestStep(), ctx())
    # The evidence arrives: a new attempt with the log for the agent.
    events = decide_protocol_run(
        run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")), ctx()
    )
    assert len(events) == 1
    assert isinstance(events[0], ev.StepExecutionRequested)
    requested = events[0]
    assert (requested.reason, requested.attempt) == (ExecutionReason.CI_FIX, 1)
    assert requested.ci_failure is not None
    assert "assert 1 == 2" in requested.ci_failure.log_excerpt
    run = apply(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")))
    assert run.steps[0].executing
    assert not run.steps[0].ci_fix_pending
    assert run.steps[0].ci_failure is not None
    # The same evidence twice: one fix.
    assert (
        decide_protocol_run(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")), ctx())
        == []
    )


def test_a_late_failure_report_for_the_old_commit_does_not_fail_the_fix_in_progress() -> None:
    run = apply(_executed(), _failure("sha-a", "d1"))
    step_id = run.steps[0].step_run_id
    run = apply(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")))
    # check_run, check_suite and workflow_run all report the same failed CI run.
    run = apply(run, _failure("sha-a", "d2"))
    assert run.steps[0].executing
    assert run.steps[0].status is StepStatus.RUNNING


def test_the_budget_stops_the_loop_and_blocks_the_run_with_the_reason() -> None:
    run = _executed("sha-0")
    step_id = run.steps[0].step_run_id
    for n in (1, 2):
        run = apply(run, _failure(f"sha-{n - 1}", f"d{n}"))
        run = apply(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(n, f"sha-{n - 1}")))
        run = apply(
            run, cmd.RecordStepExecutionCompleted(step_run_id=step_id, attempt=n, commit_sha=f"sha-{n}")
        )
    events = decide_protocol_run(run, _failure("sha-2", "d3"), ctx())
    assert not any(isinstance(e, ev.CiFixRequested) for e in events)
    run = apply(run, _failure("sha-2", "d3"))
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.FAILED)
    assert "budget is spent" in run.blocked_reason
    assert "2 CI fix attempt" in run.blocked_reason


def test_without_a_fix_policy_a_failure_blocks_the_run_at_once() -> None:
    run = apply(_executed(), _failure("sha-a", "d1", fix_attempts=0))
    assert (run.status, run.steps[0].failure_source) == (RunStatus.BLOCKED, FailureSource.CI)
    assert "budget" not in run.blocked_reason


def test_a_green_rerun_before_the_evidence_arrives_overtakes_the_fix() -> None:
    run = apply(_executed(), _failure("sha-a", "d1"))
    step_id = run.steps[0].step_run_id
    run = apply(run, cmd.RecordCiReport(head_sha="sha-a", status=CiStatus.SUCCESS, delivery_id="d2"))
    assert run.steps[0].status is StepStatus.COMPLETED
    assert not run.steps[0].ci_fix_pending
    assert (
        decide_protocol_run(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")), ctx())
        == []
    )


def test_a_fix_interrupted_by_pause_keeps_its_evidence_on_resume() -> None:
    run = apply(_executed(), _failure("sha-a", "d1"))
    step_id = run.steps[0].step_run_id
    run = apply(run, cmd.RequestCiFix(step_run_id=step_id, evidence=_evidence(1, "sha-a")))
    run = apply(run, cmd.PauseProtocolRun())
    events = decide_protocol_run(run, cmd.ResumeProtocolRun(), ctx())
    resumed = [e for e in events if isinstance(e, ev.StepExecutionRequested)]
    assert resumed
    assert resumed[0].ci_failure is not None
    assert resumed[0].reason is ExecutionReason.RESUME
    assert resumed[0].ci_failure.log_excerpt == "E   assert 1 == 2"


def test_cancelled_run_refuses_the_fix() -> None:
    run = apply(_executed(), _failure("sha-a", "d1"))
    run = apply(run, cmd.CancelProtocolRun())
    with pytest.raises(IllegalTransition):
        decide_protocol_run(
            run, cmd.RequestCiFix(step_run_id=run.steps[0].step_run_id, evidence=_evidence(1, "sha-a")), ctx()
        )
    with pytest.raises(IllegalTransition):
        decide_protocol_run(run, _failure("sha-a", "d9"), ctx())


def test_requeue_asks_again_for_everything_in_flight() -> None:
    run = apply(planned_run(3), cmd.RunNextStep())
    first = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=first, commit_sha="c1"))
    run = apply(run, cmd.RunStepQa(step_run_id=first))
    run = apply(run, cmd.OpenPullRequest())
    events = decide_protocol_run(run, cmd.RequeueLostWork(reason="consumer idle"), ctx())
    assert [type(e) for e in events] == [ev.QaRequested, ev.PullRequestRequested]
    qa = events[0]
    assert isinstance(qa, ev.QaRequested)
    assert (qa.qa_attempt, qa.reason) == (2, QaReason.REQUEUE)
    # Nothing in flight: nothing to requeue.
    idle = planned_run(1)
    with pytest.raises(IllegalTransition, match="no work"):
        decide_protocol_run(idle, cmd.RequeueLostWork(), ctx())


def test_requeue_of_an_execution_keeps_the_attempt_and_of_planning_makes_a_new_one() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    events = decide_protocol_run(run, cmd.RequeueLostWork(), ctx())
    assert len(events) == 1
    assert isinstance(events[0], ev.StepExecutionRequested)
    assert (events[0].attempt, events[0].reason) == (0, ExecutionReason.REQUEUE)

    planning = apply(new_run(), cmd.StartProtocolRun())
    events = decide_protocol_run(planning, cmd.RequeueLostWork(), ctx())
    assert events == [ev.PlanningRequested(attempt=2)]
    paused = apply(planning, cmd.PauseProtocolRun())
    with pytest.raises(IllegalTransition, match="paused"):
        decide_protocol_run(paused, cmd.RequeueLostWork(), ctx())

"""A project or run that is not moving says why: its status reason, its latest error, and the job that
failed and will be tried again (with when)."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ClarificationQuestion,
    JobRetry,
    RunPolicy,
    TokenUsage,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.project import (
    ProjectCommand,
    ProjectState,
    ProjectStatus,
    decide_project,
    evolve_project,
)
from deksdenflow_core.domain.protocol_run import RunStatus, decide_protocol_run, evolve_protocol_run
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for
from deksdenflow_core.errors import InvalidCommand

from tests.domain.builders import apply, ctx, new_run, planned_run, registered_project


def retry(job: str = "project.onboarding_requested", error: str = "git: could not resolve host") -> JobRetry:
    return JobRetry(
        job=job,
        request_event_id="evt-1",
        delivery=2,
        max_deliveries=10,
        error=error,
        failed_at_ms=1_000,
        next_try_at_ms=6_000,
    )


def project_apply(state: ProjectState, command: ProjectCommand) -> ProjectState:
    for e in decide_project(state, command, ctx()):
        state = evolve_project(state, e)
    return state


def onboarding() -> ProjectState:
    return project_apply(registered_project(), pcmd.RequestOnboarding())


def test_a_retrying_onboarding_says_why_and_when_and_its_result_ends_the_retry() -> None:
    state = project_apply(onboarding(), pcmd.RecordProjectJobRetry(retry=retry()))
    assert state.status is ProjectStatus.ONBOARDING
    assert state.retry == retry()
    assert state.last_error == "git: could not resolve host"

    done = project_apply(state, pcmd.RecordOnboardingCompleted(attempt=1, local_path="/x"))
    assert done.retry is None
    assert done.last_error == "git: could not resolve host"  # kept, for the record
    assert done.status_reason == ""


def test_a_failed_onboarding_gives_its_reason_and_a_new_attempt_clears_it() -> None:
    failed = project_apply(
        project_apply(onboarding(), pcmd.RecordProjectJobRetry(retry=retry())),
        pcmd.RecordOnboardingFailed(attempt=1, reason="repository not found"),
    )
    assert failed.status is ProjectStatus.ONBOARDING_FAILED
    assert failed.status_reason == "repository not found"
    assert failed.last_error == "repository not found"
    assert failed.retry is None

    again = project_apply(failed, pcmd.RequestOnboarding())
    assert again.status is ProjectStatus.ONBOARDING
    assert again.status_reason == ""


def test_a_blocked_project_names_the_questions_left_and_answers_clear_them() -> None:
    questions = [
        ClarificationQuestion(key="ci", question="Which CI?", blocking=True),
        ClarificationQuestion(key="owner", question="Who owns it?", blocking=True),
        ClarificationQuestion(key="style", question="Style?", blocking=False),
    ]
    blocked = project_apply(
        onboarding(), pcmd.RecordOnboardingCompleted(attempt=1, local_path="/x", questions=questions)
    )
    assert blocked.status is ProjectStatus.BLOCKED
    assert blocked.status_reason == "waiting for answers to: ci, owner"

    one = project_apply(blocked, pcmd.AnswerClarifications(answers={"ci": "github"}))
    assert one.status is ProjectStatus.BLOCKED
    assert one.status_reason == "waiting for answers to: owner"

    ready = project_apply(one, pcmd.AnswerClarifications(answers={"owner": "me"}))
    assert ready.status is ProjectStatus.READY
    assert ready.status_reason == ""


@pytest.mark.parametrize("bad", [None, JobRetry(request_event_id="e"), JobRetry(job="j")])
def test_a_retry_notice_names_its_job_and_request(bad: JobRetry | None) -> None:
    with pytest.raises(InvalidCommand):
        decide_project(onboarding(), pcmd.RecordProjectJobRetry(retry=bad), ctx())
    with pytest.raises(InvalidCommand):
        decide_protocol_run(planned_run(1), cmd.RecordJobRetry(retry=bad), ctx())


def test_a_run_job_retry_stands_until_something_else_happens_on_the_run() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    notice = retry(job="protocol_run.step_execution_requested", error="engine: 503")
    retrying = apply(run, cmd.RecordJobRetry(retry=notice))
    assert retrying.retry == notice
    assert retrying.last_error == "engine: 503"

    # facts from outside the job, and an agent call's failed try, leave it standing
    usage = ev.UsageRecorded(call_id="c1", step_run_id=sid, usage=TokenUsage(input_tokens=1))
    still = evolve_protocol_run(retrying, usage)
    assert still.retry == notice
    tried = evolve_protocol_run(still, ev.StepAttemptFailed(step_run_id=sid, reason="rate limited"))
    assert tried.retry == notice
    assert tried.last_error == "rate limited"

    # the job's result ends it
    done = apply(tried, cmd.RecordStepExecutionStarted(step_run_id=sid, attempt=0, worker_id="w2"))
    assert done.retry is None
    assert done.last_error == "rate limited"


def test_failures_become_the_runs_latest_error() -> None:
    run = apply(new_run(), cmd.StartProtocolRun())
    failed = apply(run, cmd.RecordPlanningFailed(attempt=1, reason="plan is not valid JSON"))
    assert failed.status is RunStatus.FAILED
    assert failed.blocked_reason == "plan is not valid JSON"
    assert failed.last_error == "plan is not valid JSON"


def test_a_retry_notice_asks_for_no_work_on_an_autopilot_run_and_may_follow_its_end() -> None:
    run = apply(new_run(run_policy=RunPolicy()), cmd.StartProtocolRun())
    notice = retry(job="protocol_run.planning_requested")
    assert decide_protocol_run(run, cmd.RecordJobRetry(retry=notice), ctx()) == [
        ev.JobRetryScheduled(retry=notice)
    ]
    cancelled = apply(run, cmd.CancelProtocolRun())
    after = apply(cancelled, cmd.RecordJobRetry(retry=retry(job="protocol_run.branch_deletion_requested")))
    assert after.status is RunStatus.CANCELLED
    assert after.retry is not None
    assert after.retry.job == "protocol_run.branch_deletion_requested"


def test_a_manual_run_waits_for_a_persons_action_whenever_no_worker_has_its_work() -> None:
    run = planned_run(2)
    assert waiting_for(run) == "action"  # run the first step
    run = apply(run, cmd.RunNextStep())
    assert waiting_for(run) is None  # the codex worker has it
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, attempt=0, commit_sha="abc"))
    assert waiting_for(run) == "action"  # its QA is for a person to ask
    run = apply(run, cmd.RunStepQa(step_run_id=sid))
    assert waiting_for(run) is None
    assert waiting_for(apply(run, cmd.PauseProtocolRun())) is None  # paused: resume, not wait


def test_an_agent_calls_failed_try_is_a_retry_with_its_next_try_until_the_execution_ends() -> None:
    run = apply(planned_run(1), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    failed = cmd.RecordStepAttemptFailed(
        step_run_id=sid,
        attempt=0,
        try_number=1,
        reason="engine: rate limited",
        tries=3,
        failed_at_ms=10_000,
        next_try_at_ms=11_000,
    )
    retrying = apply(run, failed)
    assert retrying.retry == JobRetry(
        job="protocol_run.step_execution_requested",
        step_run_id=sid,
        delivery=1,
        max_deliveries=3,
        error="engine: rate limited",
        failed_at_ms=10_000,
        next_try_at_ms=11_000,
    )
    done = apply(retrying, cmd.RecordStepExecutionCompleted(step_run_id=sid, attempt=0, commit_sha="abc"))
    assert done.retry is None
    assert done.last_error == "engine: rate limited"

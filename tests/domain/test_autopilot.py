"""Autopilot: the run asks for its next piece of work in the decision that finishes the previous one,
under its recorded policy — and every guard a person meets (pause, cancel, plan approval, budgets) holds."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    CiProvider,
    CiRunRef,
    CiStatus,
    ExecutionReason,
    MergeMethod,
    MergeMode,
    MergePolicy,
    PlanApproval,
    PrOpening,
    PrPolicy,
    QaPolicy,
    QaReason,
    QaVerdict,
    ReviewComment,
    ReviewFeedback,
    ReviewState,
    RunMode,
    RunPolicy,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunEvent,
    ProtocolRunState,
    RunStatus,
    StepStatus,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for
from deksdenflow_core.errors import IllegalTransition, InvalidCommand

from tests.domain.builders import apply, ctx, new_run, plan_steps

AUTOPILOT = RunPolicy(mode=RunMode.AUTOPILOT)
WHEN_GREEN = RunPolicy(
    mode=RunMode.AUTOPILOT,
    merge=MergePolicy(mode=MergeMode.WHEN_GREEN, method=MergeMethod.SQUASH, required_checks=("test",)),
    pr=PrPolicy(reviewers=("octocat",)),
)


def _decide(run: ProtocolRunState, command: ProtocolRunCommand) -> list[ProtocolRunEvent]:
    return decide_protocol_run(run, command, ctx())


def _types(events: list[ProtocolRunEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def _planned(
    n: int = 5, policy: RunPolicy | None = AUTOPILOT, qa: QaPolicy = QaPolicy.FULL
) -> ProtocolRunState:
    run = apply(new_run(run_policy=policy), cmd.StartProtocolRun())
    return apply(run, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(n, qa)))


def _executed(run: ProtocolRunState, index: int, sha: str) -> list[ProtocolRunCommand]:
    step = run.steps[index]
    return [
        cmd.RecordStepExecutionCompleted(step_run_id=step.step_run_id, attempt=step.attempt, commit_sha=sha),
        cmd.RecordBranchPushed(branch=run.protocol_name, commit_sha=sha),
    ]


def _run_step(run: ProtocolRunState, index: int) -> ProtocolRunState:
    """The worker executes step ``index`` (pushing commit sha-<index>) and QA passes it."""
    step = run.steps[index]
    assert step.executing, f"step {index} was not requested"
    for command in _executed(run, index, f"sha-{index}"):
        run = apply(run, command)
    step = run.steps[index]
    assert step.qa_pending, "autopilot requests QA right after the execution"
    return apply(
        run,
        cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=QaVerdict.PASS),
    )


def _ci(sha: str, status: CiStatus, check: str, delivery: str, run_id: int = 1) -> cmd.RecordCiReport:
    return cmd.RecordCiReport(
        provider=CiProvider.GITHUB,
        status=status,
        raw_status=status.name.lower(),
        head_sha=sha,
        delivery_id=delivery,
        ci_run=CiRunRef(check=check, run_id=run_id, updated_at_ms=run_id),
        fix_attempts=1,
    )


def test_the_accepted_plan_requests_the_first_step_in_the_same_decision() -> None:
    run = apply(new_run(run_policy=AUTOPILOT), cmd.StartProtocolRun())
    events = _decide(run, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(5)))
    assert _types(events) == ["PlanningCompleted", "StepExecutionRequested"]
    request = events[1]
    assert isinstance(request, ev.StepExecutionRequested)
    assert request.reason is ExecutionReason.AUTOPILOT


def test_five_steps_run_to_a_pr_marked_ready_with_no_client_call_and_end_when_it_is_merged() -> None:
    run = _planned(5)
    for index in range(5):
        run = _run_step(run, index)
        if index == 0:
            # the first push opened the draft PR; the worker reports it
            assert run.pr_requested
            assert run.pr_attempt == 1
            run = apply(run, cmd.RecordPullRequestOpened(attempt=1, number=7, url="https://pr/7"))
        if index < 4:
            assert run.steps[index + 1].executing, "the next step is requested when QA passes"
    assert all(s.status is StepStatus.COMPLETED for s in run.steps)
    assert run.pr_ready_requested, "every step done: the PR is marked ready for review"
    run = apply(run, cmd.RecordPullRequestMarkedReady(attempt=1))
    assert run.pr_ready
    # an autopilot run ends with its PR: until a person merges it, reviews can still ask for fixes
    assert run.status is RunStatus.RUNNING
    assert waiting_for(run) == "review"
    run = apply(run, cmd.RecordPullRequestMerged(number=7, url="https://pr/7"))
    assert run.status is RunStatus.COMPLETED


def test_a_pr_closed_unmerged_ends_a_run_whose_steps_are_done() -> None:
    run = _planned(1)
    run = _run_step(run, 0)
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, number=7, url="https://pr/7"))
    events = _decide(run, cmd.RecordPullRequestClosed(number=7, url="https://pr/7"))
    assert _types(events) == ["PullRequestClosed", "ProtocolRunCompleted"]


def test_manual_mode_asks_for_nothing_by_itself() -> None:
    run = _planned(3, policy=RunPolicy(mode=RunMode.MANUAL))
    assert not run.steps[0].executing
    run = apply(run, cmd.RunNextStep())
    for command in _executed(run, 0, "sha-0"):
        run = apply(run, command)
    assert not run.steps[0].qa_pending
    assert not run.pr_requested
    assert run.run_policy.qa_after_execution is False


def test_plan_approval_required_waits_in_planned_until_approved() -> None:
    policy = RunPolicy(mode=RunMode.AUTOPILOT, plan_approval=PlanApproval.REQUIRED)
    run = _planned(3, policy=policy)
    assert run.status is RunStatus.PLANNED
    assert not any(s.executing for s in run.steps)
    assert waiting_for(run) == "plan_approval"
    with pytest.raises(IllegalTransition, match="awaits approval"):
        _decide(run, cmd.RunNextStep())
    events = _decide(run, cmd.ApprovePlan())
    assert _types(events) == ["PlanApproved", "StepExecutionRequested"]
    run = apply(run, cmd.ApprovePlan())
    assert run.steps[0].executing
    assert waiting_for(run) is None
    with pytest.raises(IllegalTransition):
        _decide(run, cmd.ApprovePlan())


def test_a_rejected_plan_is_planned_again_with_the_reason_and_needs_approval_again() -> None:
    policy = RunPolicy(mode=RunMode.AUTOPILOT, plan_approval=PlanApproval.REQUIRED)
    run = _planned(3, policy=policy)
    with pytest.raises(InvalidCommand):
        _decide(run, cmd.RejectPlan(reason="  "))
    run = apply(run, cmd.RejectPlan(reason="split the migration into its own step"))
    assert run.status is RunStatus.PLANNING
    assert run.planning_attempt == 2
    assert run.plan_feedback == "split the migration into its own step"
    run = apply(run, cmd.RecordPlanningCompleted(attempt=2, steps=plan_steps(4)))
    assert waiting_for(run) == "plan_approval"
    assert not any(s.executing for s in run.steps)


def test_a_plan_cannot_be_rejected_once_a_step_ran() -> None:
    run = _planned(3)
    with pytest.raises(IllegalTransition):
        _decide(run, cmd.RejectPlan(reason="too late"))


def test_a_paused_run_does_not_advance_and_resume_continues_where_it_stopped() -> None:
    run = apply(_planned(3), cmd.PauseProtocolRun())
    for command in _executed(run, 0, "sha-0"):
        run = apply(run, command)
    assert run.steps[0].status is StepStatus.NEEDS_QA
    assert not run.steps[0].qa_pending
    assert not run.pr_requested, "a paused run asks for nothing"
    events = _decide(run, cmd.ResumeProtocolRun())
    assert _types(events) == ["ProtocolRunResumed", "PullRequestRequested", "QaRequested"]
    qa = events[2]
    assert isinstance(qa, ev.QaRequested)
    assert qa.reason is QaReason.AFTER_EXEC


def test_cancel_mid_autopilot_asks_for_nothing_more() -> None:
    run = apply(_planned(3), cmd.CancelProtocolRun(reason="enough"))
    assert run.status is RunStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        _decide(
            run, cmd.RecordStepExecutionCompleted(step_run_id=run.steps[0].step_run_id, commit_sha="late")
        )
    with pytest.raises(IllegalTransition):
        _decide(run, cmd.RunNextStep())


def test_a_qa_failure_blocks_the_run_and_autopilot_waits_for_a_person() -> None:
    run = _planned(3)
    for command in _executed(run, 0, "sha-0"):
        run = apply(run, command)
    step = run.steps[0]
    run = apply(
        run,
        cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=QaVerdict.FAIL),
    )
    assert run.status is RunStatus.BLOCKED
    assert not run.steps[1].executing
    run = apply(run, cmd.RetryLatestStep())
    assert run.steps[0].executing
    assert run.status is RunStatus.RUNNING


def test_a_skipped_qa_step_goes_straight_on_to_the_next() -> None:
    run = _planned(3, qa=QaPolicy.SKIP)
    for command in _executed(run, 0, "sha-0"):
        run = apply(run, command)
    assert run.steps[0].status is StepStatus.COMPLETED
    assert run.steps[1].executing


def _all_done_when_green() -> ProtocolRunState:
    run = _planned(2, policy=WHEN_GREEN)
    run = _run_step(run, 0)
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, number=9, url="https://pr/9"))
    return _run_step(run, 1)


def test_merge_when_green_waits_for_ready_green_ci_and_required_checks_then_merges() -> None:
    run = _all_done_when_green()
    assert run.status is RunStatus.RUNNING, "with merge: when_green the run completes when merged"
    assert run.pr_ready_requested
    run = apply(run, cmd.RecordPullRequestMarkedReady(attempt=1, reviewers_requested=("octocat",)))
    assert waiting_for(run) == "ci"
    assert not run.merge_requested
    # green, but not the required check: no merge
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:lint", "d1"))
    assert not run.merge_requested
    # a required check on an older commit does not count
    run = apply(run, _ci("sha-0", CiStatus.SUCCESS, "check_run:test", "d2"))
    assert not run.merge_requested
    events = _decide(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:test", "d3"))
    assert _types(events) == ["CiReported", "MergeRequested"]
    merge = events[1]
    assert isinstance(merge, ev.MergeRequested)
    assert (merge.head_sha, merge.method) == ("sha-1", MergeMethod.SQUASH)
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:test", "d3"))
    assert waiting_for(run) == "merge"
    run = apply(run, cmd.RecordPullRequestMerged(number=9, url="https://pr/9", merge_commit_sha="m1"))
    assert run.status is RunStatus.COMPLETED
    assert run.pr_merged


def test_a_failing_check_on_the_head_holds_the_merge() -> None:
    run = _all_done_when_green()
    run = apply(run, cmd.RecordPullRequestMarkedReady(attempt=1))
    run = apply(run, _ci("sha-1", CiStatus.RUNNING, "check_run:build", "d0"))
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:test", "d1"))
    assert not run.merge_requested, "build still runs on the head commit"
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:build", "d2", run_id=2))
    assert run.merge_requested


def test_a_refused_merge_blocks_the_run_and_retry_asks_again() -> None:
    run = _all_done_when_green()
    run = apply(run, cmd.RecordPullRequestMarkedReady(attempt=1))
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:test", "d1"))
    assert run.merge_requested
    assert run.merge_attempt == 1
    run = apply(run, cmd.RecordMergeFailed(attempt=1, reason="Pull Request is not mergeable"))
    assert run.status is RunStatus.BLOCKED
    assert "not mergeable" in run.blocked_reason
    assert not run.merge_requested
    assert _decide(run, cmd.RecordMergeFailed(attempt=1, reason="again")) == [], "a duplicate changes nothing"
    run = apply(run, cmd.RetryLatestStep())
    assert run.merge_requested
    assert run.merge_attempt == 2
    assert run.status is RunStatus.RUNNING


def test_gitlab_merge_when_pipeline_succeeds_is_scheduled_then_merged() -> None:
    run = _all_done_when_green()
    run = apply(run, cmd.RecordPullRequestMarkedReady(attempt=1))
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "pipeline:push", "d1"))
    assert not run.merge_requested, "the required check 'test' has not reported"
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "status:test", "d2"))
    run = apply(run, cmd.RecordMergeScheduled(attempt=1))
    assert run.merge_scheduled
    assert waiting_for(run) == "merge"
    with pytest.raises(IllegalTransition, match="no work"):
        _decide(run, cmd.RequeueLostWork(reason="a scheduled merge is the forge's, not a worker's"))


def test_ci_failure_on_a_completed_step_gets_one_fix_then_blocks_when_the_budget_is_spent() -> None:
    run = _planned(2)
    run = _run_step(run, 0)
    assert run.steps[1].executing
    run = _run_step(run, 1)
    assert run.status is RunStatus.RUNNING, "the run waits on its PR: CI on the last commit still counts"
    run = apply(run, _ci("sha-1", CiStatus.FAILURE, "check_run:test", "f1"))
    assert run.steps[1].status is StepStatus.FAILED
    assert run.steps[1].ci_fix_pending
    step_id = run.steps[1].step_run_id
    run = apply(run, cmd.RequestCiFix(step_run_id=step_id, evidence=CiFailureEvidence(fix_attempt=1)))
    assert run.steps[1].executing
    run = _run_step_with(run, 1, "sha-fix")
    assert run.steps[1].status is StepStatus.COMPLETED
    run = apply(run, _ci("sha-fix", CiStatus.FAILURE, "check_run:test", "f2", run_id=3))
    assert run.status is RunStatus.BLOCKED, "one fix was the budget: the run waits for a person"
    assert "budget is spent" in run.blocked_reason


def _run_step_with(run: ProtocolRunState, index: int, sha: str) -> ProtocolRunState:
    for command in _executed(run, index, sha):
        run = apply(run, command)
    step = run.steps[index]
    return apply(
        run,
        cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=QaVerdict.PASS),
    )


def test_the_policy_is_recorded_at_creation_and_overrides_take_the_projects_values_elsewhere() -> None:
    run = new_run(run_policy=WHEN_GREEN, override=RunPolicy(plan_approval=PlanApproval.REQUIRED))
    policy = run.run_policy
    assert policy.mode is RunMode.AUTOPILOT
    assert policy.plan_approval is PlanApproval.REQUIRED
    assert policy.merge is not None
    assert policy.merge.mode is MergeMode.WHEN_GREEN
    assert policy.merge.required_checks == ("test",)
    assert policy.pr is not None
    assert policy.pr.reviewers == ("octocat",)
    assert policy.pr.open is PrOpening.AFTER_FIRST_PUSH
    assert policy.qa_after_execution is True


def test_a_run_recorded_before_policies_is_manual() -> None:
    created = ev.ProtocolRunCreated(
        protocol_run_id="r", project_id="p", number=1, slug="x", protocol_name="0001-x"
    )
    run = evolve_protocol_run(ProtocolRunState.initial("r"), created)
    assert run.run_policy == run_policy.MANUAL
    assert not run.autopilot


def test_policies_no_run_could_follow_are_refused() -> None:
    with pytest.raises(InvalidCommand, match="not a forge login"):
        run_policy.resolve(None, RunPolicy(pr=PrPolicy(reviewers=("not a login",))))
    with pytest.raises(InvalidCommand, match="required_approvals"):
        run_policy.resolve(None, RunPolicy(merge=MergePolicy(required_approvals=11)))
    assert run_policy.resolve(None, None) == run_policy.DEFAULT
    assert run_policy.resolve(None, RunPolicy(mode=RunMode.MANUAL)).qa_after_execution is False


def test_ci_on_an_autopilot_run_is_not_waited_for_between_steps() -> None:
    run = _planned(3)
    run = _run_step(run, 0)
    run = apply(run, _ci("sha-0", CiStatus.RUNNING, "check_run:test", "r1"))
    assert run.steps[1].executing, "the next step runs while CI runs on the previous commit"
    assert run.run_policy.merge is not None
    assert run.run_policy.merge.mode is MergeMode.NEVER
    assert run.steps[0].status is StepStatus.COMPLETED


def _review(
    state: ReviewState, sha: str, review_id: str, *, reviewer: str = "ann", body: str = "please rename x"
) -> cmd.RecordReview:
    return cmd.RecordReview(
        provider=CiProvider.GITHUB,
        review=ReviewFeedback(
            review_id=review_id,
            reviewer=reviewer,
            state=state,
            body=body,
            comments=(ReviewComment(path="part_1.py", line=1, body="x is not a name"),),
            commit_sha=sha,
            url=f"https://pr/7#review-{review_id}",
        ),
        delivery_id=f"delivery-{review_id}",
    )


def _ready(n: int = 2, policy: RunPolicy = AUTOPILOT) -> ProtocolRunState:
    run = _planned(n, policy=policy)
    run = _run_step(run, 0)
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, number=7, url="https://pr/7"))
    for index in range(1, n):
        run = _run_step(run, index)
    return apply(run, cmd.RecordPullRequestMarkedReady(attempt=1))


def test_changes_requested_become_a_fix_of_the_step_reviewed_with_the_reviewers_words() -> None:
    run = _ready(3)
    events = _decide(run, _review(ReviewState.CHANGES_REQUESTED, "sha-1", "r1"))
    assert _types(events) == ["ReviewRecorded", "StepFailed", "ReviewFixRequested", "StepExecutionRequested"]
    request = events[-1]
    assert isinstance(request, ev.StepExecutionRequested)
    assert request.reason is ExecutionReason.REVIEW_FIX
    assert request.step_run_id == run.steps[1].step_run_id, "the step whose commit was reviewed"
    assert request.review is not None
    assert request.review.fix_attempt == 1
    assert request.review.comments[0].body == "x is not a name"
    run = apply(run, _review(ReviewState.CHANGES_REQUESTED, "sha-1", "r1"))
    assert waiting_for(run) is None, "a fix is running"
    assert _decide(run, _review(ReviewState.CHANGES_REQUESTED, "sha-1", "r1")) == [], "delivered twice"
    # the fix executes and passes QA: the reviewer gets a reply saying what was done
    step = run.steps[1]
    run = apply(
        run,
        cmd.RecordStepExecutionCompleted(
            step_run_id=step.step_run_id, attempt=step.attempt, commit_sha="sha-r1", summary="Renamed x"
        ),
    )
    step = run.steps[1]
    events = _decide(
        run,
        cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=QaVerdict.PASS),
    )
    assert _types(events) == ["QaVerdictRecorded", "StepCompleted", "ReviewReplyRequested"]
    reply = events[-1]
    assert isinstance(reply, ev.ReviewReplyRequested)
    assert reply.review_id == "r1"
    assert "Renamed x" in reply.body
    assert "sha-r1" in reply.body
    run = apply(
        run,
        cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=step.qa_attempt, verdict=QaVerdict.PASS),
    )
    assert run.steps[1].review is None
    assert waiting_for(run) == "review", "ann asked for changes: she looks again"
    run = apply(run, _review(ReviewState.APPROVED, "sha-r1", "r2"))
    assert run.approved_by == frozenset({"ann"})
    assert not run.changes_requested_by


def test_a_review_fix_waits_for_the_step_in_flight_and_then_runs() -> None:
    run = _planned(3)
    run = _run_step(run, 0)
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, number=7, url="https://pr/7"))
    assert run.steps[1].executing
    run = apply(run, _review(ReviewState.COMMENTED, "sha-0", "c1"))
    assert run.steps[0].review_fix_request is not None
    assert run.steps[0].status is StepStatus.FAILED
    assert run.steps[1].executing, "the step in flight goes on"
    run = _run_step(run, 1)
    assert run.steps[0].executing, "then the review fix runs before the next step"
    assert not run.steps[2].executing


def test_review_fixes_block_the_run_when_their_budget_is_spent() -> None:
    policy = RunPolicy(mode=RunMode.AUTOPILOT, review_fix_attempts=1)
    run = _ready(2, policy=policy)
    run = apply(run, _review(ReviewState.CHANGES_REQUESTED, "sha-1", "r1"))
    run = _run_step_with(run, 1, "sha-fix")
    events = _decide(run, _review(ReviewState.CHANGES_REQUESTED, "sha-fix", "r2"))
    assert _types(events) == ["ReviewRecorded", "StepFailed", "ProtocolRunBlocked"]
    run = apply(run, _review(ReviewState.CHANGES_REQUESTED, "sha-fix", "r2"))
    assert run.status is RunStatus.BLOCKED
    assert "review fix attempt" in run.blocked_reason


def test_comments_without_words_approvals_and_manual_runs_ask_for_no_fix() -> None:
    run = _ready(2)
    empty = _review(ReviewState.COMMENTED, "sha-1", "e1", body="")
    empty = empty.model_copy(update={"review": empty.review.model_copy(update={"comments": ()})})  # type: ignore[union-attr]
    assert _types(_decide(run, empty)) == ["ReviewRecorded"]
    assert _types(_decide(run, _review(ReviewState.APPROVED, "sha-1", "a1"))) == ["ReviewRecorded"]
    manual = apply(new_run(), cmd.StartProtocolRun())
    manual = apply(manual, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(1)))
    manual = apply(manual, cmd.RunNextStep())
    for command in _executed(manual, 0, "sha-0"):
        manual = apply(manual, command)
    assert _types(_decide(manual, _review(ReviewState.CHANGES_REQUESTED, "sha-0", "m1"))) == [
        "ReviewRecorded"
    ]


def test_merge_when_green_waits_for_the_required_approvals() -> None:
    policy = RunPolicy(
        mode=RunMode.AUTOPILOT, merge=MergePolicy(mode=MergeMode.WHEN_GREEN, required_approvals=1)
    )
    run = _ready(2, policy=policy)
    run = apply(run, _ci("sha-1", CiStatus.SUCCESS, "check_run:test", "d1"))
    assert not run.merge_requested
    assert waiting_for(run) == "review"
    events = _decide(run, _review(ReviewState.APPROVED, "sha-1", "a1"))
    assert _types(events) == ["ReviewRecorded", "MergeRequested"]
    run = apply(run, _review(ReviewState.DISMISSED, "sha-1", "a1"))
    assert not run.approved_by, "a dismissed approval no longer counts"


def test_a_review_delivered_after_its_dismissal_does_not_count() -> None:
    run = _ready(2)
    run = apply(run, _review(ReviewState.DISMISSED, "sha-1", "a1"))
    late = _review(ReviewState.APPROVED, "sha-1", "a1")
    assert _decide(run, late) == [], "the dismissal came first: the approval it dismissed never counts"
    run = apply(run, late)
    assert not run.approved_by
    late_changes = _review(ReviewState.CHANGES_REQUESTED, "sha-1", "c1")
    run = apply(run, _review(ReviewState.DISMISSED, "sha-1", "c1"))
    assert _decide(run, late_changes) == [], "nor does a dismissed request for changes ask for a fix"


def test_a_reply_to_a_review_is_recorded_once() -> None:
    run = _ready(2)
    replied = cmd.RecordReviewReplied(review_id="r1", url="https://pr/7#issuecomment-1")
    assert _types(_decide(run, replied)) == ["ReviewReplied"]
    run = apply(run, replied)
    assert run.review_replies == frozenset({"r1"})
    assert _decide(run, replied) == [], "the reply job ran twice"


def test_a_start_under_run_limits_queues_the_run_until_it_is_admitted() -> None:
    run = new_run(run_policy=AUTOPILOT)
    events = _decide(run, cmd.StartProtocolRun(queue=True))
    assert _types(events) == ["ProtocolRunQueued"]
    run = apply(run, cmd.StartProtocolRun(queue=True))
    assert run.status is RunStatus.QUEUED
    assert waiting_for(run) == "queue"
    with pytest.raises(IllegalTransition):
        _decide(run, cmd.StartProtocolRun(queue=True))
    with pytest.raises(IllegalTransition):
        _decide(run, cmd.RunNextStep())
    # paused while queued: not admitted; resumed, it waits again
    paused = apply(run, cmd.PauseProtocolRun())
    assert _decide(paused, cmd.AdmitProtocolRun()) == []
    assert apply(paused, cmd.ResumeProtocolRun()).status is RunStatus.QUEUED
    events = _decide(run, cmd.AdmitProtocolRun(active_in_project=0, active_total=3))
    assert _types(events) == ["ProtocolRunAdmitted", "PlanningRequested"]
    run = apply(run, cmd.AdmitProtocolRun())
    assert run.status is RunStatus.PLANNING
    assert _decide(run, cmd.AdmitProtocolRun()) == [], "admitted twice is once"
    cancelled = apply(apply(new_run(), cmd.StartProtocolRun(queue=True)), cmd.CancelProtocolRun(reason="no"))
    assert cancelled.status is RunStatus.CANCELLED

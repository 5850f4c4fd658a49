"""``decide``: the rules of a protocol run. Users, workers and webhooks all come through here.

User actions that do not apply raise ``IllegalTransition`` (HTTP 409 with the current status). Worker
and webhook results that were already recorded, or belong to an attempt that is over, produce no
events (so redelivery is harmless); results for a run that ended are rejected.
"""

from __future__ import annotations

from typing import assert_never

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    CiStatus,
    CompletionVia,
    DirectiveAction,
    ExecutionReason,
    FailureSource,
    JobRetry,
    LoopCause,
    PlanApproval,
    PrPolicy,
    QaPolicy,
    QaReason,
    QaVerdict,
    ReviewFeedback,
    ReviewState,
    RunCompletionReason,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.context import DecisionContext
from deksdenflow_core.domain.protocol_run import audit, autopilot, plan, policies
from deksdenflow_core.domain.protocol_run.evolve import ProtocolRunEvent, evolve_protocol_run, review_key
from deksdenflow_core.domain.protocol_run.state import (
    MAX_PUSH_ANCESTORS,
    OPEN_STEP_STATUSES,
    STUCK_STEP_STATUSES,
    ProtocolRunState,
    RunStatus,
    StepState,
    StepStatus,
    budget_warning_key,
    ci_ref_position,
)
from deksdenflow_core.errors import IllegalTransition, InvalidCommand, NotFound

ProtocolRunCommand = (
    cmd.StartProtocolRun
    | cmd.PauseProtocolRun
    | cmd.ResumeProtocolRun
    | cmd.CancelProtocolRun
    | cmd.RunNextStep
    | cmd.RetryLatestStep
    | cmd.OpenPullRequest
    | cmd.RequestBranchDeletion
    | cmd.RunStep
    | cmd.RunStepQa
    | cmd.ApproveStep
    | cmd.RecordPlanningStarted
    | cmd.RecordPlanningCompleted
    | cmd.RecordPlanningFailed
    | cmd.RecordStepExecutionStarted
    | cmd.RecordStepAttemptFailed
    | cmd.RecordJobRetry
    | cmd.RecordEngineFallback
    | cmd.RecordGuardrailViolations
    | cmd.RecordStepExecutionCompleted
    | cmd.RecordStepExecutionFailed
    | cmd.RecordStepBlocked
    | cmd.RecordQaVerdict
    | cmd.RecordBranchPushed
    | cmd.RecordBranchRestored
    | cmd.RecordBranchDeleted
    | cmd.RecordPullRequestOpened
    | cmd.RecordPullRequestFailed
    | cmd.RecordPullRequestMerged
    | cmd.RecordPullRequestClosed
    | cmd.RecordCiReport
    | cmd.RequestCiFix
    | cmd.RequeueLostWork
    | cmd.RecordUsage
    | cmd.RecordBudgetWarning
    | cmd.ApprovePlan
    | cmd.RejectPlan
    | cmd.RecordPullRequestMarkedReady
    | cmd.RecordPullRequestReadyFailed
    | cmd.RecordMergeScheduled
    | cmd.RecordMergeFailed
    | cmd.RecordReview
    | cmd.RecordReviewReplied
    | cmd.AdmitProtocolRun
    | cmd.ContinueProtocolRun
    | cmd.AuditSpec
)

# Statuses from which new work (planning, execution, QA, PR) may be requested.
_WORKING = frozenset({RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.BLOCKED})


def decide_protocol_run(
    state: ProtocolRunState, command: ProtocolRunCommand, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    """The events ``command`` produces for ``state``, or a ``DomainError``; on an autopilot run, followed
    by the work the run asks for next (``autopilot.next_work``), in the same decision."""
    if not state.exists:
        raise NotFound(f"protocol run {state.protocol_run_id} does not exist")
    events = _decide(state, command, ctx)
    # (a job's retry, an engine's fallback and a budget warning are notices: no work follows from them)
    if events and state.autopilot and not isinstance(command, _NOTICES):
        events.extend(autopilot.next_work(_fold(state, events)))
    return events


def _decide(
    state: ProtocolRunState, command: ProtocolRunCommand, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    match command:
        case cmd.StartProtocolRun():
            return _start(state, queue=command.queue)
        case cmd.AdmitProtocolRun():
            if state.status is not RunStatus.QUEUED:
                return []  # admitted already, paused or cancelled while it waited
            return [
                ev.ProtocolRunAdmitted(
                    active_in_project=command.active_in_project, active_total=command.active_total
                ),
                ev.PlanningRequested(attempt=state.planning_attempt + 1),
            ]
        case cmd.PauseProtocolRun():
            _require_not_terminal(state, "pause")
            if state.status is RunStatus.PAUSED:
                raise _illegal(state, "the run is already paused")
            return [ev.ProtocolRunPaused()]
        case cmd.ResumeProtocolRun():
            if state.status is not RunStatus.PAUSED:
                raise _illegal(state, "only a paused run can be resumed")
            return [ev.ProtocolRunResumed(), *_rerequest_interrupted(state)]
        case cmd.CancelProtocolRun():
            _require_not_terminal(state, "cancel")
            open_ids = tuple(s.step_run_id for s in state.steps if s.status in OPEN_STEP_STATUSES)
            return [ev.ProtocolRunCancelled(reason=command.reason, cancelled_step_run_ids=open_ids)]
        case cmd.ApprovePlan():
            return _approve_plan(state)
        case cmd.AuditSpec():
            return audit.audit(state)
        case cmd.RejectPlan():
            return _reject_plan(state, command.reason)
        case cmd.RunNextStep():
            return _run_next_step(state)
        case cmd.RetryLatestStep():
            _require_working(state, "retry")
            stuck = [s for s in state.steps if s.status in STUCK_STEP_STATUSES]
            if not stuck and state.merge_failed_reason and state.status is RunStatus.BLOCKED:
                return _retry_merge(state)
            if not stuck:
                raise _illegal(state, "there is no failed or blocked step to retry")
            _require_nothing_in_flight(state)
            return [_execute(stuck[-1], ExecutionReason.RETRY)]
        case cmd.OpenPullRequest():
            return _open_pr(state)
        case cmd.RequestBranchDeletion():
            if not state.is_terminal:
                raise _illegal(state, "the branch of a run that has not ended cannot be deleted")
            if state.branch_deletion_requested:
                raise _illegal(state, "deleting this branch was already requested")
            return [ev.BranchDeletionRequested(branch=state.protocol_name)]
        case cmd.RunStep():
            return _run_step(state, command.step_run_id)
        case cmd.RunStepQa():
            step = _require_step(state, command.step_run_id)
            _require_working(state, "run QA")
            return [_request_qa(state, step, QaReason.MANUAL)]
        case cmd.ApproveStep():
            step = _require_step(state, command.step_run_id)
            _require_not_terminal(state, "approve a step")
            if step.status not in (StepStatus.NEEDS_QA, *STUCK_STEP_STATUSES):
                raise _illegal_step(state, step, "only a step in needs_qa, failed or blocked can be approved")
            return _complete_step(state, step, CompletionVia.MANUAL_APPROVE, [], ctx)
        case cmd.ContinueProtocolRun():
            return _continue(state, command.reason)
        case _:
            return _decide_result(state, command, ctx)


def _decide_result(
    state: ProtocolRunState, command: ProtocolRunCommand, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    """Results reported by workers and webhooks."""
    match command:
        case cmd.RecordPlanningStarted():
            if not _planning_current(state, command.attempt) or state.planning_owner == command.worker_id:
                return []
            return [ev.PlanningStarted(attempt=command.attempt, worker_id=command.worker_id)]
        case cmd.RecordPlanningCompleted():
            if not _planning_current(state, command.attempt):
                return []
            return [_accept_plan(command, ctx)]
        case cmd.RecordPlanningFailed():
            if not _planning_current(state, command.attempt):
                return []
            return [ev.PlanningFailed(attempt=command.attempt, reason=command.reason)]
        case cmd.RecordStepExecutionStarted():
            step = _executing(state, command.step_run_id, command.attempt)
            if step is None or step.owner == command.worker_id:
                return []
            return [
                ev.StepExecutionStarted(
                    step_run_id=step.step_run_id, attempt=command.attempt, worker_id=command.worker_id
                )
            ]
        case cmd.RecordJobRetry() | cmd.RecordEngineFallback() | cmd.RecordGuardrailViolations():
            return _notice(state, command)
        case cmd.RecordStepAttemptFailed():
            step = _executing(state, command.step_run_id, command.attempt)
            if step is None:
                return []
            return [
                ev.StepAttemptFailed(
                    step_run_id=step.step_run_id,
                    attempt=command.attempt,
                    try_number=command.try_number,
                    reason=command.reason,
                    tries=command.tries,
                    failed_at_ms=command.failed_at_ms,
                    next_try_at_ms=command.next_try_at_ms,
                )
            ]
        case cmd.RecordStepExecutionCompleted():
            return _execution_completed(state, command, ctx)
        case cmd.RecordStepExecutionFailed():
            step = _executing(state, command.step_run_id, command.attempt)
            if step is None:
                return []
            return [
                ev.StepExecutionFailed(
                    step_run_id=step.step_run_id, attempt=command.attempt, reason=command.reason
                ),
                *_fail_step(state, step, FailureSource.EXECUTION, command.reason, loop=True),
            ]
        case cmd.RecordStepBlocked():
            return _step_blocked(state, command)
        case cmd.RecordQaVerdict():
            return _qa_verdict(state, command, ctx)
        case cmd.RecordBranchPushed():
            return [
                ev.BranchPushed(
                    branch=command.branch,
                    commit_sha=command.commit_sha,
                    ancestors=command.ancestors[:MAX_PUSH_ANCESTORS],
                )
            ]
        case cmd.RecordBranchRestored():
            if not command.commit_sha:
                raise InvalidCommand("a restored branch needs the head pushed back", field="commit_sha")
            return [
                ev.BranchRestored(
                    branch=command.branch, commit_sha=command.commit_sha, found_sha=command.found_sha
                )
            ]
        case cmd.RecordBranchDeleted():
            if not state.branch_deletion_requested:
                raise _illegal(state, "deleting this branch was never requested")
            if state.branch_deleted:
                return []
            return [ev.BranchDeleted(branch=command.branch, existed=command.existed)]
        case cmd.RecordPullRequestOpened():
            if state.pr_number == command.number and state.pr_url == command.url and not state.pr_requested:
                return []
            return [
                ev.PullRequestOpened(
                    attempt=command.attempt,
                    provider=command.provider,
                    number=command.number,
                    url=command.url,
                    reused=command.reused,
                )
            ]
        case cmd.RecordPullRequestFailed():
            if not state.pr_requested or command.attempt != state.pr_attempt:
                return []
            return [ev.PullRequestFailed(attempt=command.attempt, reason=command.reason)]
        case cmd.RecordPullRequestMerged():
            return _pr_merged(state, command)
        case cmd.RecordPullRequestClosed():
            return _pr_closed(state, command)
        case cmd.RecordCiReport():
            return _ci_report(state, command, ctx)
        case cmd.RequestCiFix():
            return _ci_fix(state, command)
        case cmd.RequeueLostWork():
            return _requeue(state)
        case (
            cmd.RecordPullRequestMarkedReady()
            | cmd.RecordPullRequestReadyFailed()
            | cmd.RecordMergeScheduled()
            | cmd.RecordMergeFailed()
        ):
            return _ready_or_merge_result(state, command)
        case cmd.RecordReview():
            return _review(state, command)
        case cmd.RecordReviewReplied():
            if command.review_id in state.review_replies:
                return []  # the reply job ran twice (a redelivery): the reply is recorded once
            return [ev.ReviewReplied(review_id=command.review_id, url=command.url)]
        case cmd.RecordBudgetWarning():
            return _budget_warning(state, command)
        case cmd.RecordUsage():
            return _usage(state, command)
        case (
            cmd.StartProtocolRun()
            | cmd.PauseProtocolRun()
            | cmd.ResumeProtocolRun()
            | cmd.CancelProtocolRun()
            | cmd.RunNextStep()
            | cmd.RetryLatestStep()
            | cmd.OpenPullRequest()
            | cmd.RequestBranchDeletion()
            | cmd.RunStep()
            | cmd.RunStepQa()
            | cmd.ApproveStep()
            | cmd.ApprovePlan()
            | cmd.RejectPlan()
            | cmd.AdmitProtocolRun()
            | cmd.ContinueProtocolRun()
            | cmd.AuditSpec()
        ):
            raise AssertionError("user actions are decided in decide_protocol_run")
        case _:
            assert_never(command)


def _ready_or_merge_result(
    state: ProtocolRunState,
    command: cmd.RecordPullRequestMarkedReady
    | cmd.RecordPullRequestReadyFailed
    | cmd.RecordMergeScheduled
    | cmd.RecordMergeFailed,
) -> list[ProtocolRunEvent]:
    """What the git worker did with a PR/MR the autopilot asked to mark ready or to merge."""
    match command:
        case cmd.RecordPullRequestMarkedReady():
            if not state.pr_ready_requested or command.attempt != state.pr_ready_attempt:
                return []
            return [
                ev.PullRequestMarkedReady(
                    attempt=command.attempt, reviewers_requested=command.reviewers_requested
                )
            ]
        case cmd.RecordPullRequestReadyFailed():
            if not state.pr_ready_requested or command.attempt != state.pr_ready_attempt:
                return []
            return [ev.PullRequestReadyFailed(attempt=command.attempt, reason=command.reason)]
        case cmd.RecordMergeScheduled():
            if not _merge_current(state, command.attempt) or state.merge_scheduled:
                return []
            return [ev.MergeScheduled(attempt=command.attempt)]
        case cmd.RecordMergeFailed():
            if not _merge_current(state, command.attempt):
                return []
            return [
                ev.MergeFailed(attempt=command.attempt, reason=command.reason),
                ev.ProtocolRunBlocked(reason=f"the merge was refused: {command.reason}"),
            ]


# Commands that record what happened to a job and ask for no work.
_NOTICES = (
    cmd.RecordJobRetry,
    cmd.RecordEngineFallback,
    cmd.RecordGuardrailViolations,
    cmd.RecordBudgetWarning,
)


def _notice(
    state: ProtocolRunState,
    command: cmd.RecordJobRetry | cmd.RecordEngineFallback | cmd.RecordGuardrailViolations,
) -> list[ProtocolRunEvent]:
    """What a worker says about a job in progress: it is retried, it fell back, its change broke a rule."""
    if isinstance(command, cmd.RecordJobRetry):
        return [ev.JobRetryScheduled(retry=_job_retry(command))]
    if isinstance(command, cmd.RecordEngineFallback):
        return [_fallback(command)]
    step = _executing(state, command.step_run_id, command.attempt)
    if step is None or not command.findings:
        return []
    return [
        ev.GuardrailViolated(
            step_run_id=step.step_run_id,
            attempt=command.attempt,
            reask=command.reask,
            findings=command.findings,
            asked_again=command.asked_again,
        )
    ]


def _fallback(command: cmd.RecordEngineFallback) -> ev.EngineFallbackTaken:
    if not (command.from_engine and command.to_engine and command.reason):
        raise InvalidCommand("a fallback names the engines it leaves and takes, and why", field="reason")
    return ev.EngineFallbackTaken(
        step_run_id=command.step_run_id,
        phase=command.phase,
        from_engine=command.from_engine,
        from_model=command.from_model,
        to_engine=command.to_engine,
        to_model=command.to_model,
        reason=command.reason,
        error=command.error,
        cooldown_until_ms=command.cooldown_until_ms,
    )


def _job_retry(command: cmd.RecordJobRetry) -> JobRetry:
    retry = command.retry
    if retry is None or not retry.job or not retry.request_event_id:
        raise InvalidCommand("a job retry names its job and request", field="retry")
    return retry


# --- user actions -----------------------------------------------------------------------------------------


def _start(state: ProtocolRunState, *, queue: bool = False) -> list[ProtocolRunEvent]:
    """pending, failed (no plan) or planned (nothing run yet) -> planning, or -> queued when run limits
    are set (``queue``: the admission admits it when a slot is free). A paused run counts by the status
    it was paused in, and is resumed by the start."""
    _require_not_terminal(state, "start")
    status = state.effective_status
    untouched = all(s.status is StepStatus.PENDING for s in state.steps)
    if status not in (RunStatus.PENDING, RunStatus.FAILED, RunStatus.PLANNED) or not untouched:
        raise _illegal(state, "only a pending, failed or planned run whose steps have not run can be started")
    events: list[ProtocolRunEvent] = []
    if state.status is RunStatus.PAUSED:
        events.append(ev.ProtocolRunResumed())
    if queue:
        events.append(ev.ProtocolRunQueued())
    else:
        events.append(ev.PlanningRequested(attempt=state.planning_attempt + 1))
    return events


def _run_step(state: ProtocolRunState, step_run_id: str) -> list[ProtocolRunEvent]:
    """A person runs one step: a pending one (the plan approved and sound), or again a failed one."""
    step = _require_step(state, step_run_id)
    _require_working(state, "run a step")
    if step.status is StepStatus.PENDING:
        _require_plan_approved(state)
        _require_spec_sound(state)
        _require_nothing_in_flight(state)
        return [_execute(step, ExecutionReason.RUN)]
    if step.status in STUCK_STEP_STATUSES:
        _require_nothing_in_flight(state)
        return [_execute(step, ExecutionReason.RETRY)]
    raise _illegal_step(state, step, "only a pending, failed or blocked step can be run")


def _run_next_step(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    _require_working(state, "run the next step", allow_blocked=False)
    _require_plan_approved(state)
    _require_spec_sound(state)
    _require_nothing_in_flight(state)
    step = next((s for s in state.steps if s.status is StepStatus.PENDING), None)
    if step is None:
        raise _illegal(state, "there is no pending step")
    return [_execute(step, ExecutionReason.RUN_NEXT_STEP)]


def _approve_plan(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    _require_not_terminal(state, "approve the plan")
    if state.run_policy.plan_approval is not PlanApproval.REQUIRED:
        raise _illegal(state, "this run's plan needs no approval (plan_approval: auto)")
    if state.effective_status is not RunStatus.PLANNED:
        raise _illegal(state, "only the plan of a planned run can be approved")
    if state.plan_approved:
        raise _illegal(state, "the plan is already approved")
    return [ev.PlanApproved(attempt=state.planning_attempt)]


def _reject_plan(state: ProtocolRunState, reason: str) -> list[ProtocolRunEvent]:
    """The plan is planned again, the reason given to the planner; only before any step ran."""
    _require_not_terminal(state, "reject the plan")
    if not reason.strip():
        raise InvalidCommand("say why the plan is rejected: the planner gets the reason", field="reason")
    if state.status is RunStatus.PAUSED:
        raise _illegal(state, "the run is paused; resume it first")
    untouched = all(s.status is StepStatus.PENDING and not s.executing for s in state.steps)
    if state.status is not RunStatus.PLANNED or not untouched:
        raise _illegal(state, "only the plan of a planned run whose steps have not run can be rejected")
    return [
        ev.PlanRejected(attempt=state.planning_attempt, reason=reason.strip()),
        ev.PlanningRequested(attempt=state.planning_attempt + 1, feedback=reason.strip()),
    ]


def _continue(state: ProtocolRunState, reason: str) -> list[ProtocolRunEvent]:
    """A person lets a run stopped at a checkpoint go on."""
    _require_not_terminal(state, "continue")
    if not state.checkpoint_step:
        raise _illegal(state, "the run is not stopped at a checkpoint")
    if state.status is RunStatus.PAUSED:
        raise _illegal(state, "the run is paused; resume it first")
    events: list[ProtocolRunEvent] = [
        ev.CheckpointPassed(step_run_id=state.checkpoint_step, reason=reason.strip())
    ]
    # the steps still in flight at the checkpoint (a parallel group's) may all be done by now
    if state.all_steps_done and not state.ends_with_pr:
        events.append(ev.ProtocolRunCompleted(reason=RunCompletionReason.ALL_STEPS_DONE))
    return events


def _retry_merge(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """A merge the forge refused, asked for again (the head may have moved, CI re-run, a conflict been
    resolved by a person)."""
    if not autopilot.merge_ready(state.model_copy(update={"merge_failed_reason": ""})):
        raise _illegal(
            state,
            "the merge cannot be retried yet: every step must be completed, the PR open (and ready) and CI "
            "green on the head commit",
        )
    return [autopilot.merge_request(state, state.merge_attempt + 1)]


def _rerequest_interrupted(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """Work a pause interrupted, requested again on resume.

    Workers stop the agent when a run is paused and drop the job, so whatever was in flight must be asked
    for again: planning as a new attempt (results of the interrupted one become stale), an execution with
    the same attempt (its retry count does not change: nothing failed), QA as a new QA attempt.
    """
    if state.paused_from is RunStatus.PLANNING:
        return [ev.PlanningRequested(attempt=state.planning_attempt + 1)]
    events: list[ProtocolRunEvent] = []
    if (step := state.executing_step) is not None:
        events.append(
            ev.StepExecutionRequested(
                step_run_id=step.step_run_id,
                attempt=step.attempt,
                reason=ExecutionReason.RESUME,
                ci_failure=step.ci_failure,
            )
        )
    events.extend(
        ev.QaRequested(
            step_run_id=s.step_run_id,
            qa_attempt=s.qa_attempt + 1,
            policy=_qa_policy(s),
            reason=QaReason.RESUME,
        )
        for s in state.steps
        if s.qa_pending
    )
    return events


def _requeue(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """Work whose request no worker has or will get, asked for again (the scheduler decides it is lost).

    Like a resume: planning and QA as new attempts (a late result of the lost one becomes stale), an
    execution with the same attempt (the worker finds a commit it already pushed by its trailer), a CI fix
    and a pull request asked for again as they were.
    """
    _require_not_terminal(state, "requeue work")
    if state.status is RunStatus.PAUSED:
        raise _illegal(state, "the run is paused; resuming it asks for its work again")
    events: list[ProtocolRunEvent] = []
    if state.status is RunStatus.PLANNING:
        events.append(ev.PlanningRequested(attempt=state.planning_attempt + 1))
    for step in state.steps:
        if step.executing:
            events.append(
                ev.StepExecutionRequested(
                    step_run_id=step.step_run_id,
                    attempt=step.attempt,
                    reason=ExecutionReason.REQUEUE,
                    ci_failure=step.ci_failure,
                )
            )
        if step.qa_pending:
            events.append(
                ev.QaRequested(
                    step_run_id=step.step_run_id,
                    qa_attempt=step.qa_attempt + 1,
                    policy=_qa_policy(step),
                    reason=QaReason.REQUEUE,
                )
            )
        if step.ci_fix_request is not None:
            events.append(step.ci_fix_request)
    if state.pr_requested:
        events.append(ev.PullRequestRequested(attempt=state.pr_attempt + 1))
    if state.pr_ready_requested:
        events.append(
            ev.PullRequestReadyRequested(
                attempt=state.pr_ready_attempt + 1, reviewers=(state.run_policy.pr or PrPolicy()).reviewers
            )
        )
    if state.merge_requested and not state.merge_scheduled:
        events.append(autopilot.merge_request(state, state.merge_attempt + 1))
    if not events:
        raise _illegal(state, "no work of this run is waiting for a worker")
    return events


def _qa_policy(step: StepState) -> QaPolicy:
    """The policy QA runs with once requested: skip only ever skips automatic QA, so it runs as full."""
    return QaPolicy.FULL if step.qa_policy in (QaPolicy.SKIP, QaPolicy.UNSPECIFIED) else step.qa_policy


def _open_pr(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    if state.status is RunStatus.CANCELLED:
        raise _illegal(state, "a cancelled run gets no pull request")
    if state.status is RunStatus.PAUSED:
        raise _illegal(state, "the run is paused; resume it first")
    if state.status not in (*_WORKING, RunStatus.COMPLETED):
        raise _illegal(state, "a pull request needs a planned run")
    if state.pr_requested:
        raise _illegal(state, "a pull request is already being opened")
    if state.pr_number and not state.pr_closed:
        raise _illegal(state, f"pull request {state.pr_url or state.pr_number} is already open")
    return [ev.PullRequestRequested(attempt=state.pr_attempt + 1)]


def _execute(step: StepState, reason: ExecutionReason) -> ev.StepExecutionRequested:
    attempt = step.attempt + 1 if reason is ExecutionReason.RETRY else step.attempt
    return ev.StepExecutionRequested(step_run_id=step.step_run_id, attempt=attempt, reason=reason)


def _request_qa(state: ProtocolRunState, step: StepState, reason: QaReason) -> ev.QaRequested:
    requalify = step.status is StepStatus.FAILED and step.failure_source in (
        FailureSource.QA,
        FailureSource.CI,
    )
    # CI reported its run in progress (the step shows running), then success: QA of the step is next.
    ci_passed = reason is QaReason.CI_SUCCESS and step.status is StepStatus.RUNNING and not step.executing
    if step.status is not StepStatus.NEEDS_QA and not requalify and not ci_passed:
        raise _illegal_step(state, step, "QA runs on a step in needs_qa (or again after a QA or CI failure)")
    if step.qa_pending:
        raise _illegal_step(state, step, "QA of this step is already requested")
    return ev.QaRequested(
        step_run_id=step.step_run_id, qa_attempt=step.qa_attempt + 1, policy=_qa_policy(step), reason=reason
    )


# --- results ------------------------------------------------------------------------------------------------


def _accept_plan(command: cmd.RecordPlanningCompleted, ctx: DecisionContext) -> ProtocolRunEvent:
    problems = plan.plan_problems(command.steps)
    if problems:
        return ev.PlanningFailed(attempt=command.attempt, reason="invalid plan: " + "; ".join(problems))
    steps = tuple(s.model_copy(update={"step_run_id": ctx.new_id()}) for s in plan.normalise(command.steps))
    return ev.PlanningCompleted(
        attempt=command.attempt,
        steps=steps,
        spec_hash=plan.spec_hash(steps),
        commit_sha=command.commit_sha,
        prompt_version=command.prompt_version,
        engine_id=command.engine_id,
        model=command.model,
        decompose_prompt_version=command.decompose_prompt_version,
        steps_refined=command.steps_refined,
        steps_kept_as_planned=command.steps_kept_as_planned,
    )


def _execution_completed(
    state: ProtocolRunState, command: cmd.RecordStepExecutionCompleted, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    """The step awaits QA (or completes, QA skipped), unless its agent's directive says otherwise: ``loop``
    takes the step's loop policy, ``error`` fails the execution, ``pause`` pauses the run; ``trigger``,
    ``checkpoint`` and ``stop`` are kept on the step and act once it completes."""
    step = _executing(state, command.step_run_id, command.attempt)
    if step is None:
        return []
    directive = command.directive
    if directive is not None and directive.action is DirectiveAction.UNSPECIFIED:
        directive = None
    events: list[ProtocolRunEvent] = [
        ev.StepExecutionCompleted(
            step_run_id=step.step_run_id,
            attempt=command.attempt,
            summary=command.summary,
            changed_files=command.changed_files,
            commit_sha=command.commit_sha,
            prompt_version=command.prompt_version,
            engine_id=command.engine_id,
            model=command.model,
            directive=directive,
        )
    ]
    if command.directive_error:
        events.append(
            ev.DirectiveRejected(
                step_run_id=step.step_run_id, attempt=command.attempt, error=command.directive_error
            )
        )
    action = directive.action if directive is not None else DirectiveAction.UNSPECIFIED
    reason = directive.reason if directive is not None else ""
    if action is DirectiveAction.ERROR:
        after = _fold(state, events)
        failed = _require_step(after, step.step_run_id)
        why = "the agent reported an error" + (f": {reason}" if reason else "")
        return [*events, *_fail_step(after, failed, FailureSource.EXECUTION, why, loop=True)]
    if action is DirectiveAction.LOOP:
        after = _fold(state, events)
        why = "the agent asked to loop" + (f": {reason}" if reason else "")
        loop = policies.loop_decision(after, _require_step(after, step.step_run_id), LoopCause.DIRECTIVE, why)
        if isinstance(loop, ev.LoopTaken):
            return [*events, loop]
        if loop is not None:
            events.append(loop)  # spent: the step goes on to its QA as if the agent had not asked
    if step.qa_policy is QaPolicy.SKIP:
        events = _complete_step(state, step, CompletionVia.QA_SKIPPED, events, ctx)
    else:
        qa_after = command.auto_qa or bool(state.run_policy.qa_after_execution)
        if qa_after and state.status is not RunStatus.PAUSED and action is not DirectiveAction.PAUSE:
            after = _fold(state, events)
            events.append(_request_qa(after, _require_step(after, step.step_run_id), QaReason.AFTER_EXEC))
    after = _fold(state, events)
    if action is DirectiveAction.PAUSE and not after.is_terminal and after.status is not RunStatus.PAUSED:
        events.append(ev.ProtocolRunPaused())
    return events


def _step_blocked(state: ProtocolRunState, command: cmd.RecordStepBlocked) -> list[ProtocolRunEvent]:
    step = _require_step(state, command.step_run_id)
    _require_not_terminal(state, "block a step")
    # A step awaiting QA (also QA again after a failure) is blocked when its QA cannot run (its branch
    # was lost, say).
    awaiting_qa = step.status is StepStatus.NEEDS_QA or (step.status is StepStatus.FAILED and step.qa_pending)
    if step.status not in (StepStatus.PENDING, StepStatus.RUNNING) and not awaiting_qa:
        raise _illegal_step(state, step, "only a pending or running step, or one awaiting QA, can be blocked")
    return [
        ev.StepBlocked(step_run_id=step.step_run_id, reason=command.reason),
        ev.ProtocolRunBlocked(reason=command.reason, step_run_id=step.step_run_id),
    ]


def _qa_verdict(
    state: ProtocolRunState, command: cmd.RecordQaVerdict, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    step = _require_step(state, command.step_run_id)
    if not step.qa_pending or command.qa_attempt != step.qa_attempt:
        return []
    if state.status is RunStatus.CANCELLED:
        raise _illegal(state, "the run was cancelled")
    # Fail-closed: anything but an explicit PASS is a FAIL.
    verdict = QaVerdict.PASS if command.verdict is QaVerdict.PASS else QaVerdict.FAIL
    recorded = ev.QaVerdictRecorded(
        **command.model_dump(exclude={"verdict"}),
        verdict=verdict,
    )
    if step.status not in (StepStatus.NEEDS_QA, StepStatus.FAILED) or state.is_terminal:
        return [recorded]
    if verdict is QaVerdict.PASS:
        return _complete_step(state, step, CompletionVia.QA_PASS, [recorded], ctx)
    reason = "QA verdict FAIL" + (f": {command.blocking[0]}" if command.blocking else "")
    return [recorded, *_fail_step(state, step, FailureSource.QA, reason, loop=True)]


def _pr_merged(state: ProtocolRunState, command: cmd.RecordPullRequestMerged) -> list[ProtocolRunEvent]:
    if state.pr_merged:
        return []
    if state.status is RunStatus.CANCELLED:
        raise _illegal(state, "the run was cancelled; its merge is not recorded")
    merged = ev.PullRequestMerged(
        number=command.number, url=command.url, merge_commit_sha=command.merge_commit_sha
    )
    if state.status is RunStatus.COMPLETED:
        return [merged]
    still_open = tuple(s.step_run_id for s in state.steps if s.status in OPEN_STEP_STATUSES)
    return [
        merged,
        ev.ProtocolRunCompleted(reason=RunCompletionReason.PR_MERGED, cancelled_step_run_ids=still_open),
    ]


def _pr_closed(state: ProtocolRunState, command: cmd.RecordPullRequestClosed) -> list[ProtocolRunEvent]:
    """Closed unmerged: an autopilot run that only waited on its PR/MR ends with it."""
    if state.pr_closed or state.status is RunStatus.CANCELLED:
        return []
    closed = ev.PullRequestClosed(number=command.number, url=command.url)
    if state.ends_with_pr and state.all_steps_done and not state.is_terminal:
        return [closed, ev.ProtocolRunCompleted(reason=RunCompletionReason.PR_CLOSED)]
    return [closed]


def _ci_report(
    state: ProtocolRunState, command: cmd.RecordCiReport, ctx: DecisionContext
) -> list[ProtocolRunEvent]:
    """A CI report moves the step whose commit CI ran, unless it is stale (older than what its CI run
    already reported: deliveries come in any order and more than once) or held (another check failed on
    the commit and still fails: one workflow's success does not clear another's failure)."""
    if command.delivery_id and command.delivery_id in state.ci_delivery_ids:
        return []
    if state.status is RunStatus.CANCELLED:
        raise _illegal(state, "the run was cancelled; CI results are ignored")
    step = state.step_by_commit(command.head_sha)
    stale = _ci_stale(state, command)
    held_by = "" if stale else _ci_held_by(state, command)
    reported = ev.CiReported(
        step_run_id=step.step_run_id if step else "",
        provider=command.provider,
        status=command.status,
        raw_status=command.raw_status,
        head_sha=command.head_sha,
        run_url=command.run_url,
        delivery_id=command.delivery_id,
        ci_run=command.ci_run if command.ci_run is not None and command.ci_run.check else None,
        stale=stale,
        held_by=held_by,
        commit_status=command.commit_status,
    )
    if step is None or state.is_terminal or stale or held_by:
        return [reported]
    events: list[ProtocolRunEvent] = [reported]
    ci_failed = step.status is StepStatus.FAILED and step.failure_source is FailureSource.CI
    status = command.commit_status if command.commit_status is not CiStatus.UNSPECIFIED else command.status
    if status is CiStatus.SUCCESS and (step.status in (StepStatus.NEEDS_QA, StepStatus.RUNNING) or ci_failed):
        if step.executing:
            return events
        if command.auto_qa and state.status is not RunStatus.PAUSED:
            if step.qa_pending:
                return events
            after = _fold(state, events)
            return [*events, _request_qa(after, _require_step(after, step.step_run_id), QaReason.CI_SUCCESS)]
        return _complete_step(state, step, CompletionVia.CI_SUCCESS, events, ctx)
    if status is CiStatus.FAILURE and step.status is not StepStatus.FAILED and not step.executing:
        return [*events, *_ci_failed(state, step, command)]
    return events


def _ci_stale(state: ProtocolRunState, command: cmd.RecordCiReport) -> bool:
    """True if the report is older, in the life of its own CI run, than the latest one recorded for its
    check on this commit (a later run, attempt or time; at equal times, finished beats running). A
    report about the whole commit (no CI run) is never stale."""
    ref = command.ci_run
    if ref is None or not ref.check:
        return False
    latest = state.ci_check(command.head_sha, ref.check)
    return latest is not None and ci_ref_position(ref, command.status) < latest.position


def _ci_held_by(state: ProtocolRunState, command: cmd.RecordCiReport) -> str:
    """The other check whose latest report on this commit is a failure, if this report (a success or a
    start) would otherwise move the step past it. The forge's combined state, when it was asked, and
    reports about the whole commit speak for every check and are never held."""
    ref = command.ci_run
    if ref is None or not ref.check or command.status is CiStatus.FAILURE:
        return ""
    if command.commit_status is not CiStatus.UNSPECIFIED:
        return ""
    return next(
        (
            c.check
            for c in state.ci_checks
            if c.head_sha == command.head_sha and c.check != ref.check and c.status is CiStatus.FAILURE
        ),
        "",
    )


def _ci_failed(
    state: ProtocolRunState, step: StepState, command: cmd.RecordCiReport
) -> list[ProtocolRunEvent]:
    """The step fails; the agent may fix it (the project's budget per step), else the run is blocked."""
    reason = f"CI {command.raw_status or 'failure'}" + (f": {command.run_url}" if command.run_url else "")
    if step.ci_fix_attempts < command.fix_attempts:
        return [
            ev.StepFailed(step_run_id=step.step_run_id, source=FailureSource.CI, reason=reason),
            ev.CiFixRequested(
                step_run_id=step.step_run_id,
                fix_attempt=step.ci_fix_attempts + 1,
                provider=command.provider,
                head_sha=command.head_sha,
                run_url=command.run_url,
                raw_status=command.raw_status,
            ),
        ]
    if command.fix_attempts > 0:
        reason += f" (still failing after {step.ci_fix_attempts} CI fix attempt(s); the fix budget is spent)"
    return _fail_step(state, step, FailureSource.CI, reason)


def _ci_fix(state: ProtocolRunState, command: cmd.RequestCiFix) -> list[ProtocolRunEvent]:
    """The fix a ``ci_fix_requested`` asked for, now with its evidence: a new execution attempt."""
    step = _require_step(state, command.step_run_id)
    _require_not_terminal(state, "fix CI")
    evidence = command.evidence or CiFailureEvidence()
    request = step.ci_fix_request
    if request is None or evidence.fix_attempt != request.fix_attempt:
        return []  # already requested, or overtaken (a retry, an approval, a green re-run)
    if step.status is not StepStatus.FAILED or step.failure_source is not FailureSource.CI:
        return []
    return [
        ev.StepExecutionRequested(
            step_run_id=step.step_run_id,
            attempt=step.attempt + 1,
            reason=ExecutionReason.CI_FIX,
            ci_failure=evidence,
        )
    ]


def _review(state: ProtocolRunState, command: cmd.RecordReview) -> list[ProtocolRunEvent]:
    """A review of the PR/MR: recorded (approvals count toward ``merge: when_green``); changes requested,
    or comments, become a fix of the step they concern on an autopilot run, within the policy's
    ``review_fix_attempts`` per step — spent, the step fails and the run waits for a person."""
    review = command.review or ReviewFeedback()
    if review_key(review) in state.review_keys or (command.delivery_id in state.review_keys):
        return []
    if _dismissed_before(state, review):
        return []
    if state.status is RunStatus.CANCELLED:
        raise _illegal(state, "the run was cancelled; reviews are ignored")
    step = state.step_by_commit(review.commit_sha) or next(
        (s for s in reversed(state.steps) if s.commit_sha), None
    )
    recorded = ev.ReviewRecorded(
        provider=command.provider,
        review=review,
        step_run_id=step.step_run_id if step else "",
        delivery_id=command.delivery_id,
    )
    asks = review.state is ReviewState.CHANGES_REQUESTED or (
        review.state is ReviewState.COMMENTED and (review.body.strip() or review.comments)
    )
    if not asks or step is None or state.is_terminal or not state.autopilot:
        return [recorded]
    budget = state.run_policy.review_fix_attempts or 0
    reason = f"review by {review.reviewer or 'a reviewer'} asks for changes" + (
        f": {review.url}" if review.url else ""
    )
    if step.review_fix_attempts >= budget:
        if budget:
            reason += f" (after {step.review_fix_attempts} review fix attempt(s); the budget is spent)"
        return [recorded, *_fail_step(state, step, FailureSource.REVIEW, reason)]
    fix = ev.ReviewFixRequested(
        step_run_id=step.step_run_id,
        review=review.model_copy(update={"fix_attempt": step.review_fix_attempts + 1}),
    )
    in_flight = step.executing or step.qa_pending or step.status in (StepStatus.RUNNING, StepStatus.NEEDS_QA)
    if in_flight:
        return [recorded, fix]  # the fix follows once the step's current work is done
    return [
        recorded,
        ev.StepFailed(step_run_id=step.step_run_id, source=FailureSource.REVIEW, reason=reason),
        fix,
    ]


def _dismissed_before(state: ProtocolRunState, review: ReviewFeedback) -> bool:
    """The review's dismissal was delivered first: a dismissal is final (a forge never takes one back), so
    the review delivered late no longer counts, as if the two had come in order."""
    if review.state is ReviewState.DISMISSED:
        return False
    dismissal = review_key(review.model_copy(update={"state": ReviewState.DISMISSED}))
    return bool(dismissal) and dismissal in state.review_keys


def _review_reply(step: StepState, review: ReviewFeedback) -> ev.ReviewReplyRequested:
    done = step.summary.strip() or "the step was executed again"
    commit = f" in {step.commit_sha[:12]}" if step.commit_sha else ""
    return ev.ReviewReplyRequested(
        step_run_id=step.step_run_id,
        review_id=review.review_id,
        reviewer=review.reviewer,
        body=f"Addressed{commit} (step {step.name}, review fix {review.fix_attempt}): {done}",
    )


# --- consequences -----------------------------------------------------------------------------------------


def _complete_step(
    state: ProtocolRunState,
    step: StepState,
    via: CompletionVia,
    before: list[ProtocolRunEvent],
    ctx: DecisionContext,
) -> list[ProtocolRunEvent]:
    """Complete ``step``; a review fix is answered on the PR/MR; the step's trigger queues its agent's
    step and its checkpoint stops the run for a person; the last step to be done completes the run."""
    events = [*before, ev.StepCompleted(step_run_id=step.step_run_id, via=via)]
    fixed = _fold(state, before).step(step.step_run_id)
    if fixed is not None and fixed.review is not None:
        events.append(_review_reply(fixed, fixed.review))
    after = _fold(state, events)
    done = _require_step(after, step.step_run_id)
    if not after.is_terminal:
        trigger = policies.trigger_decision(after, done, ctx.new_id)
        if trigger is not None:
            events.append(trigger)
            after = _fold(state, events)
        checkpoint = policies.checkpoint_decision(after, done)
        if checkpoint is not None:
            events.append(checkpoint)
            after = _fold(state, events)
    # An autopilot run with a PR/MR completes when it is merged (or closed), not when its steps are done;
    # one stopped at a checkpoint when a person lets it go on.
    if (
        after.all_steps_done
        and not after.is_terminal
        and not after.ends_with_pr
        and not after.checkpoint_step
    ):
        events.append(ev.ProtocolRunCompleted(reason=RunCompletionReason.ALL_STEPS_DONE))
    return events


def _fail_step(
    state: ProtocolRunState, step: StepState, source: FailureSource, reason: str, *, loop: bool = False
) -> list[ProtocolRunEvent]:
    """A failed step blocks the run (unless the run has ended) — or, with ``loop`` (an execution or QA
    failure), is taken back by its loop policy while the policy has iterations left; once they are
    spent, the run is blocked and says so."""
    events: list[ProtocolRunEvent] = [
        ev.StepFailed(step_run_id=step.step_run_id, source=source, reason=reason)
    ]
    decision = policies.loop_decision(state, step, policies.CAUSE_OF_SOURCE[source], reason) if loop else None
    if isinstance(decision, ev.LoopTaken):
        return [*events, decision]
    note = ""
    if decision is not None:
        events.append(decision)
        note = policies.spent_note(decision)
    if not state.is_terminal:
        events.append(
            ev.ProtocolRunBlocked(
                reason=f"step {step.name} failed: {reason}{note}", step_run_id=step.step_run_id
            )
        )
    return events


def _fold(state: ProtocolRunState, events: list[ProtocolRunEvent]) -> ProtocolRunState:
    for e in events:
        state = evolve_protocol_run(state, e)
    return state


# --- guards -----------------------------------------------------------------------------------------------


def _planning_current(state: ProtocolRunState, attempt: int) -> bool:
    """True if a planning result for ``attempt`` is still awaited; False for duplicates and stale ones."""
    if state.is_terminal:
        raise _illegal(state, "the run has ended; planning results are ignored")
    if attempt > state.planning_attempt:
        raise InvalidCommand(f"planning attempt {attempt} was never requested", attempt=attempt)
    return attempt == state.planning_attempt and state.effective_status is RunStatus.PLANNING


def _executing(state: ProtocolRunState, step_run_id: str, attempt: int) -> StepState | None:
    """The step if a result for this execution ``attempt`` is still awaited, else None (duplicate/stale)."""
    step = _require_step(state, step_run_id)
    if state.is_terminal:
        raise _illegal(state, "the run has ended; execution results are ignored")
    if attempt > step.attempt:
        raise InvalidCommand(f"execution attempt {attempt} of step {step.name} was never requested")
    if attempt == step.attempt and step.executing:
        return step
    return None


def _require_step(state: ProtocolRunState, step_run_id: str) -> StepState:
    step = state.step(step_run_id)
    if step is None:
        raise NotFound(f"step {step_run_id} is not a step of protocol run {state.protocol_run_id}")
    return step


def _require_not_terminal(state: ProtocolRunState, action: str) -> None:
    if state.is_terminal:
        raise _illegal(state, f"cannot {action}: the run is {state.status.value}")


def _require_working(state: ProtocolRunState, action: str, *, allow_blocked: bool = True) -> None:
    _require_not_terminal(state, action)
    if state.status is RunStatus.PAUSED:
        raise _illegal(state, f"cannot {action}: the run is paused")
    allowed = _WORKING if allow_blocked else _WORKING - {RunStatus.BLOCKED}
    if state.status not in allowed:
        raise _illegal(state, f"cannot {action} while the run is {state.status.value}")


def _require_plan_approved(state: ProtocolRunState) -> None:
    if state.awaits_plan_approval:
        raise _illegal(state, "the plan awaits approval (approve_plan), or reject it with a reason")


def _require_spec_sound(state: ProtocolRunState) -> None:
    """A planned run whose plan a spec audit found wrong does not leave ``planned``."""
    if audit.held_back(state):
        raise _illegal(state, audit.hold_reason(state))


def _merge_current(state: ProtocolRunState, attempt: int) -> bool:
    """True if a merge result for ``attempt`` is still awaited; False for duplicates and stale ones."""
    if state.is_terminal:
        return False
    return state.merge_requested and attempt == state.merge_attempt


def _require_nothing_in_flight(state: ProtocolRunState) -> None:
    fixing = next((s for s in state.steps if s.ci_fix_pending), None)
    if fixing is not None:
        raise _illegal(
            state,
            f"a CI fix of step {fixing.name} is being prepared; wait for it or approve the step",
            step_run_id=fixing.step_run_id,
        )
    busy = state.executing_step or next(
        (s for s in state.steps if s.status in (StepStatus.RUNNING, StepStatus.NEEDS_QA)), None
    )
    if busy is not None:
        raise _illegal(
            state, f"step {busy.name} is {busy.status.value}; finish it first", step_run_id=busy.step_run_id
        )


def _illegal(state: ProtocolRunState, message: str, **fields: str) -> IllegalTransition:
    return IllegalTransition(
        message, current_status=state.status.value, protocol_run_id=state.protocol_run_id, **fields
    )


def _illegal_step(state: ProtocolRunState, step: StepState, message: str) -> IllegalTransition:
    return IllegalTransition(
        f"{message} (step {step.name} is {step.status.value})",
        current_status=step.status.value,
        protocol_run_id=state.protocol_run_id,
        step_run_id=step.step_run_id,
        run_status=state.status.value,
    )


def _budget_warning(state: ProtocolRunState, command: cmd.RecordBudgetWarning) -> list[ProtocolRunEvent]:
    """Spending crossed a budget's warning share: recorded once per budget (a step's: per step)."""
    if command.scope not in ("step", "protocol", "project") or command.kind not in ("tokens", "cost"):
        raise InvalidCommand("a budget warning names its scope and kind", field="scope")
    if budget_warning_key(command.scope, command.kind, command.step_run_id) in state.budget_warnings:
        return []
    return [
        ev.BudgetWarningRecorded(
            scope=command.scope,
            kind=command.kind,
            step_run_id=command.step_run_id,
            share=command.share,
            spent=command.spent,
            limit=command.limit,
        )
    ]


def _usage(state: ProtocolRunState, command: cmd.RecordUsage) -> list[ProtocolRunEvent]:
    """An agent call's usage, recorded once per call."""
    if not command.call_id:
        raise InvalidCommand("usage needs the call_id of the agent call", field="call_id")
    if command.call_id in state.usage_call_ids:
        return []
    return [
        ev.UsageRecorded(
            call_id=command.call_id,
            step_run_id=command.step_run_id,
            phase=command.phase,
            engine_id=command.engine_id,
            model=command.model,
            usage=command.usage,
            cost_micro_usd=command.cost_micro_usd,
            prompt_name=command.prompt_name,
            prompt_version=command.prompt_version,
        )
    ]

"""``evolve``: fold one ProtocolRun event into the state. Total over every event of the aggregate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Unpack, overload

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiRunRef,
    CiStatus,
    ExecutionReason,
    FailureSource,
    JobRetry,
    QaReason,
    ReviewFeedback,
    ReviewState,
    StepPlan,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.context import InvariantViolation
from deksdenflow_core.domain.protocol_run.state import (
    OPEN_STEP_STATUSES,
    STUCK_STEP_STATUSES,
    CiCheckState,
    ProtocolRunState,
    RunStatus,
    StepState,
    StepStatus,
    budget_warning_key,
)
from deksdenflow_core.domain.protocol_run.updates import RunUpdate, StepUpdate, replace

ProtocolRunEvent = (
    ev.ProtocolRunCreated
    | ev.ProtocolRunPaused
    | ev.ProtocolRunResumed
    | ev.ProtocolRunCancelled
    | ev.ProtocolRunBlocked
    | ev.ProtocolRunCompleted
    | ev.PlanningRequested
    | ev.PlanningStarted
    | ev.PlanningCompleted
    | ev.PlanningFailed
    | ev.StepExecutionRequested
    | ev.StepExecutionStarted
    | ev.StepAttemptFailed
    | ev.StepExecutionCompleted
    | ev.StepExecutionFailed
    | ev.QaRequested
    | ev.QaVerdictRecorded
    | ev.StepCompleted
    | ev.StepFailed
    | ev.StepBlocked
    | ev.BranchPushed
    | ev.BranchRestored
    | ev.BranchDeletionRequested
    | ev.BranchDeleted
    | ev.PullRequestRequested
    | ev.PullRequestOpened
    | ev.PullRequestFailed
    | ev.PullRequestMerged
    | ev.PullRequestClosed
    | ev.CiReported
    | ev.CiFixRequested
    | ev.UsageRecorded
    | ev.BudgetWarningRecorded
    | ev.PlanApproved
    | ev.PlanRejected
    | ev.PullRequestReadyRequested
    | ev.PullRequestMarkedReady
    | ev.PullRequestReadyFailed
    | ev.MergeRequested
    | ev.MergeScheduled
    | ev.MergeFailed
    | ev.ReviewRecorded
    | ev.ReviewFixRequested
    | ev.ReviewReplyRequested
    | ev.ReviewReplied
    | ev.ProtocolRunQueued
    | ev.ProtocolRunAdmitted
    | ev.JobRetryScheduled
    | ev.EngineFallbackTaken
    | ev.GuardrailViolated
    | ev.LoopTaken
    | ev.LoopSpent
    | ev.TriggerQueued
    | ev.TriggerRefused
    | ev.CheckpointReached
    | ev.CheckpointPassed
    | ev.DirectiveRejected
    | ev.SpecAudited
)


# What a handler returns: the fields of the run that change (``version`` is added by ``evolve``).
Update = RunUpdate


def evolve_protocol_run(state: ProtocolRunState, event: ProtocolRunEvent) -> ProtocolRunState:
    """Fold ``event`` into ``state``; raise ``InvariantViolation`` if it cannot apply.

    Every event makes exactly one new state (and new objects only for the steps it changes: readers
    such as the projector tell changed steps by identity). This runs once per event whenever a run is
    loaded and in the projector's hot path, so handlers are found by type and return only what changes.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise InvariantViolation(f"{type(event).__name__} is not a protocol_run event")
    if not state.exists and handler is not _created:
        raise InvariantViolation(f"{type(event).__name__} before protocol_run.created")
    if state.is_terminal and type(event) not in _AFTER_END:
        raise InvariantViolation(f"{type(event).__name__} after the run ended ({state.status})")
    update = handler(state, event)
    kind = type(event)
    error = _ERRORS.get(kind)
    if error is not None:
        update["last_error"] = error(event)
    if state.retry is not None and kind not in _KEEP_RETRY:
        update["retry"] = None
    update["version"] = state.version + 1
    return replace(state, update)


# Events that say what went wrong: the run's ``last_error`` is their reason.
_ERRORS: dict[type, Callable[[Any], str]] = {
    kind: (lambda e: e.reason)
    for kind in (
        ev.PlanningFailed,
        ev.StepAttemptFailed,
        ev.StepExecutionFailed,
        ev.StepFailed,
        ev.StepBlocked,
        ev.ProtocolRunBlocked,
        ev.PullRequestFailed,
        ev.PullRequestReadyFailed,
        ev.MergeFailed,
    )
} | {
    ev.JobRetryScheduled: lambda e: e.retry.error if e.retry else "",
    ev.EngineFallbackTaken: lambda e: f"{e.from_engine}:{e.from_model} {e.reason}: {e.error}",
    ev.GuardrailViolated: lambda e: "guardrails: " + "; ".join(f"{f.rule}: {f.message}" for f in e.findings),
}

# Events that leave a job's retry standing: facts from outside the job (usage, CI, reviews), and an
# agent call's own failed try. Anything else on the run (a result, a person's action) ends it.
_KEEP_RETRY: frozenset[type] = frozenset(
    {
        ev.UsageRecorded,
        ev.BudgetWarningRecorded,
        ev.CiReported,
        ev.ReviewRecorded,
        ev.StepAttemptFailed,
        ev.EngineFallbackTaken,
        ev.GuardrailViolated,
        ev.SpecAudited,
    }
)


def _guardrail_violated(s: ProtocolRunState, e: ev.GuardrailViolated) -> Update:
    _find_step(s, e.step_run_id)
    return {}  # the execution goes on (asked again) or fails by its own event


def _fallback_taken(s: ProtocolRunState, e: ev.EngineFallbackTaken) -> Update:
    return {}  # a fact of the call (in the log and the run's last_error); the steps do not change


def _job_retry(s: ProtocolRunState, e: ev.JobRetryScheduled) -> Update:
    return {"retry": e.retry}


def _spec_audited(s: ProtocolRunState, e: ev.SpecAudited) -> Update:
    return {"spec_findings": tuple(e.problems), "spec_rules_version": e.rules_version}


# Events that may follow the end of a run: facts that change no status.
_AFTER_END: frozenset[type] = frozenset(
    {
        ev.UsageRecorded,
        ev.BudgetWarningRecorded,
        ev.BranchPushed,
        ev.BranchRestored,
        ev.BranchDeletionRequested,
        ev.BranchDeleted,
        ev.PullRequestRequested,
        ev.PullRequestOpened,
        ev.PullRequestFailed,
        ev.PullRequestMerged,
        ev.PullRequestClosed,
        ev.CiReported,
        ev.QaVerdictRecorded,
        ev.PullRequestReadyRequested,
        ev.PullRequestMarkedReady,
        ev.PullRequestReadyFailed,
        ev.ReviewRecorded,
        ev.ReviewReplyRequested,
        ev.ReviewReplied,
        ev.JobRetryScheduled,
        ev.EngineFallbackTaken,
    }
)


def _created(s: ProtocolRunState, e: ev.ProtocolRunCreated) -> Update:
    if s.exists:
        raise InvariantViolation("protocol run created twice")
    return {
        "exists": True,
        "project_id": e.project_id,
        "number": e.number,
        "slug": e.slug,
        "protocol_name": e.protocol_name,
        "task_name": e.task_name,
        "description": e.description,
        "base_branch": e.base_branch,
        "protocol_root": e.protocol_root,
        "run_policy": run_policy.of_run(e.run_policy),
        "imported": e.imported,
    }


def _paused(s: ProtocolRunState, e: ev.ProtocolRunPaused) -> Update:
    if s.status is RunStatus.PAUSED:
        raise InvariantViolation("paused twice")
    return {"status": RunStatus.PAUSED, "paused_from": s.status}


def _resumed(s: ProtocolRunState, e: ev.ProtocolRunResumed) -> Update:
    if s.status is not RunStatus.PAUSED or s.paused_from is None:
        raise InvariantViolation("resumed a run that is not paused")
    return {"status": s.paused_from, "paused_from": None}


def _cancelled(s: ProtocolRunState, e: ev.ProtocolRunCancelled) -> Update:
    steps = _set_steps(s, e.cancelled_step_run_ids, status=StepStatus.CANCELLED, executing=False)
    return {"status": RunStatus.CANCELLED, "paused_from": None, "steps": steps}


def _completed(s: ProtocolRunState, e: ev.ProtocolRunCompleted) -> Update:
    steps = _set_steps(s, e.cancelled_step_run_ids, status=StepStatus.CANCELLED, executing=False)
    return {"status": RunStatus.COMPLETED, "paused_from": None, "steps": steps}


def _blocked(s: ProtocolRunState, e: ev.ProtocolRunBlocked) -> Update:
    return _run_status(s, RunStatus.BLOCKED, {"blocked_reason": e.reason})


def _planning_requested(s: ProtocolRunState, e: ev.PlanningRequested) -> Update:
    return _run_status(
        s,
        RunStatus.PLANNING,
        {
            "planning_attempt": e.attempt,
            "planning_owner": "",
            "plan_approved": False,
            "plan_feedback": e.feedback,
        },
    )


def _planning_started(s: ProtocolRunState, e: ev.PlanningStarted) -> Update:
    return {"planning_owner": e.worker_id}


def _planning_completed(s: ProtocolRunState, e: ev.PlanningCompleted) -> Update:
    steps = tuple(_new_step(p) for p in e.steps)
    # a new plan is checked by today's rules as it is accepted: the findings of earlier audits go
    update: Update = {"steps": steps, "plan": e.steps, "spec_findings": (), "spec_hash": e.spec_hash}
    return _run_status(s, RunStatus.PLANNED, {**update, "planning_owner": ""})


def _planning_failed(s: ProtocolRunState, e: ev.PlanningFailed) -> Update:
    return _run_status(s, RunStatus.FAILED, {"planning_owner": "", "blocked_reason": e.reason})


def _execution_requested(s: ProtocolRunState, e: ev.StepExecutionRequested) -> Update:
    """The step runs; a CI fix carries CI's evidence, kept when a resume or requeue asks again."""
    index, step = _find_step(s, e.step_run_id)
    evidence = e.ci_failure if e.reason is ExecutionReason.CI_FIX else None
    review = e.review if e.reason is ExecutionReason.REVIEW_FIX else None
    if e.reason in (ExecutionReason.RESUME, ExecutionReason.REQUEUE):
        evidence, review = step.ci_failure, step.review
    steps = _with_step(
        s.steps,
        index,
        {
            "status": StepStatus.RUNNING,
            "attempt": e.attempt,
            "executing": True,
            "owner": "",
            "failure_source": FailureSource.UNSPECIFIED,
            "failure_reason": "",
            "ci_fix_request": None,
            "ci_failure": evidence,
            "review_fix_request": None,
            "review": review,
            "directive": None,
        },
    )
    return _run_status(s, RunStatus.RUNNING, {"steps": steps, "blocked_reason": "", "checkpoint_step": ""})


def _execution_started(s: ProtocolRunState, e: ev.StepExecutionStarted) -> Update:
    return _step(s, e.step_run_id, {"owner": e.worker_id})


def _attempt_failed(s: ProtocolRunState, e: ev.StepAttemptFailed) -> Update:
    _find_step(s, e.step_run_id)
    if not e.next_try_at_ms:  # recorded before tries said when the next comes
        return {}
    retry = JobRetry(
        job=ev.StepExecutionRequested.EVENT_TYPE,
        step_run_id=e.step_run_id,
        delivery=e.try_number,
        max_deliveries=e.tries,
        error=e.reason,
        failed_at_ms=e.failed_at_ms,
        next_try_at_ms=e.next_try_at_ms,
    )
    return {"retry": retry}


def _execution_completed(s: ProtocolRunState, e: ev.StepExecutionCompleted) -> Update:
    return _step(
        s,
        e.step_run_id,
        {
            "status": StepStatus.NEEDS_QA,
            "executing": False,
            "summary": e.summary,
            "commit_sha": e.commit_sha,
            "changed_files": e.changed_files,
            "directive": e.directive,
        },
    )


def _execution_failed(s: ProtocolRunState, e: ev.StepExecutionFailed) -> Update:
    return _step(s, e.step_run_id, {"executing": False})


def _qa_requested(s: ProtocolRunState, e: ev.QaRequested) -> Update:
    changes: StepUpdate = {"qa_attempt": e.qa_attempt, "qa_pending": True}
    step = s.step(e.step_run_id)
    if e.reason is QaReason.CI_SUCCESS and step is not None and _ci_running(step):
        changes["status"] = StepStatus.NEEDS_QA  # CI ran and passed: the step now waits on its QA
    return _step(s, e.step_run_id, changes)


def _ci_running(step: StepState) -> bool:
    """A step CI set running (a report of a CI run in progress), as opposed to one being executed."""
    return step.status is StepStatus.RUNNING and not step.executing


def _qa_verdict(s: ProtocolRunState, e: ev.QaVerdictRecorded) -> Update:
    return _step(
        s,
        e.step_run_id,
        {"qa_pending": False, "last_verdict": e.verdict, "last_report_path": e.report_path},
    )


def _step_completed(s: ProtocolRunState, e: ev.StepCompleted) -> Update:
    update = _step(
        s,
        e.step_run_id,
        {
            "status": StepStatus.COMPLETED,
            "executing": False,
            "qa_pending": False,
            "ci_fix_request": None,
            "review_fix_request": None,
        },
    )
    # A blocked run whose last stuck step is resolved goes back to running (one stopped at a checkpoint
    # waits for a person all the same).
    if (
        s.effective_status is RunStatus.BLOCKED
        and not s.checkpoint_step
        and not any(st.status in STUCK_STEP_STATUSES for st in update["steps"])
    ):
        update = _run_status(s, RunStatus.RUNNING, {**update, "blocked_reason": ""})
    return update


def _step_failed(s: ProtocolRunState, e: ev.StepFailed) -> Update:
    return _step(
        s,
        e.step_run_id,
        {
            "status": StepStatus.FAILED,
            "executing": False,
            "qa_pending": False,
            "failure_source": e.source,
            "failure_reason": e.reason,
        },
    )


def _step_blocked(s: ProtocolRunState, e: ev.StepBlocked) -> Update:
    update: StepUpdate = {"status": StepStatus.BLOCKED, "executing": False, "failure_reason": e.reason}
    step = s.step(e.step_run_id)
    # Blocked while awaiting QA: that QA will not run. (Only these statuses: a running step's flag is
    # left as logs written before this rule folded it.)
    if step is not None and step.status in (StepStatus.NEEDS_QA, StepStatus.FAILED):
        update["qa_pending"] = False
    return _step(s, e.step_run_id, update)


def _branch_pushed(s: ProtocolRunState, e: ev.BranchPushed) -> Update:
    known = s.branch_commits | {e.commit_sha, *e.ancestors}
    # A commit a recorded push was made onto (an earlier push of a parallel group recorded after a
    # later one), or the head recorded again: the head stays where it is.
    if e.commit_sha in s.branch_commits:
        return {"branch_commits": known}
    return {"branch_head_sha": e.commit_sha, "branch_commits": known}


def _branch_restored(s: ProtocolRunState, e: ev.BranchRestored) -> Update:
    return {"branch_head_sha": e.commit_sha}


def _branch_deletion_requested(s: ProtocolRunState, e: ev.BranchDeletionRequested) -> Update:
    return {"branch_deletion_requested": True}


def _branch_deleted(s: ProtocolRunState, e: ev.BranchDeleted) -> Update:
    return {"branch_deleted": True, "branch_head_sha": "", "branch_commits": frozenset()}


def _pr_requested(s: ProtocolRunState, e: ev.PullRequestRequested) -> Update:
    return {"pr_attempt": e.attempt, "pr_requested": True}


def _pr_opened(s: ProtocolRunState, e: ev.PullRequestOpened) -> Update:
    update: Update = {"pr_requested": False, "pr_number": e.number, "pr_url": e.url, "pr_closed": False}
    if e.number != s.pr_number:
        update["pr_ready"] = False  # another PR: it is a draft again
    return update


def _pr_failed(s: ProtocolRunState, e: ev.PullRequestFailed) -> Update:
    return {"pr_requested": False}


def _pr_merged(s: ProtocolRunState, e: ev.PullRequestMerged) -> Update:
    return {"pr_merged": True, "pr_number": e.number or s.pr_number, "merge_requested": False}


def _pr_closed(s: ProtocolRunState, e: ev.PullRequestClosed) -> Update:
    return {"pr_closed": True}


def _ci_reported(s: ProtocolRunState, e: ev.CiReported) -> Update:
    update: Update = {"ci_delivery_ids": s.ci_delivery_ids | {e.delivery_id} - {""}}
    if e.stale:
        return update  # older than what its CI run already said: nothing moves, nothing is remembered
    if e.ci_run is not None and e.ci_run.check:
        update["ci_checks"] = _with_check(s, e, e.ci_run)
    if not e.held_by:
        said = e.commit_status if e.commit_status is not CiStatus.UNSPECIFIED else e.status
        if said is CiStatus.SUCCESS:
            update["ci_green_sha"] = e.head_sha
        elif s.ci_green_sha == e.head_sha:
            update["ci_green_sha"] = ""  # it failed or runs again on that commit
    found = _find_step(s, e.step_run_id, required=False) if e.step_run_id else None
    if found is None or e.held_by:
        return update
    index, step = found
    status = e.commit_status if e.commit_status is not CiStatus.UNSPECIFIED else e.status
    if (
        status is CiStatus.RUNNING
        and not s.is_terminal
        and step.status in (StepStatus.NEEDS_QA, StepStatus.FAILED)
    ):
        update["steps"] = _with_step(s.steps, index, {"status": StepStatus.RUNNING})
    elif status is CiStatus.SUCCESS and step.ci_fix_pending:
        update["steps"] = _with_step(
            s.steps, index, {"ci_fix_request": None}
        )  # CI passed after all (a re-run)
    return update


def _with_check(s: ProtocolRunState, e: ev.CiReported, ref: CiRunRef) -> tuple[CiCheckState, ...]:
    """The run's CI lines with this report as the latest of its own (in place, else appended)."""
    latest = CiCheckState(
        head_sha=e.head_sha,
        check=ref.check,
        run_id=ref.run_id,
        attempt=ref.attempt,
        updated_at_ms=ref.updated_at_ms,
        status=e.status,
    )
    # Only the commits steps stand on now can be judged by their checks: those of a commit a step has
    # left (it was executed again) are dropped, so the run's state does not grow with every report.
    current = {step.commit_sha for step in s.steps if step.commit_sha}
    checks = [c for c in s.ci_checks if c.head_sha in current or c.head_sha == e.head_sha]
    for index, check in enumerate(checks):
        if check.head_sha == e.head_sha and check.check == ref.check:
            checks[index] = latest
            return tuple(checks)
    return (*checks, latest)


def _ci_fix_requested(s: ProtocolRunState, e: ev.CiFixRequested) -> Update:
    return _step(s, e.step_run_id, {"ci_fix_attempts": e.fix_attempt, "ci_fix_request": e})


def _usage(s: ProtocolRunState, e: ev.UsageRecorded) -> Update:
    """Usage counts for the run and, when the call was for a step, for that step too."""
    tokens_in = e.usage.input_tokens if e.usage else 0
    tokens_out = e.usage.output_tokens if e.usage else 0
    update: Update = {
        "usage_call_ids": s.usage_call_ids | {e.call_id},
        "input_tokens": s.input_tokens + tokens_in,
        "output_tokens": s.output_tokens + tokens_out,
        "cost_micro_usd": s.cost_micro_usd + e.cost_micro_usd,
    }
    found = _find_step(s, e.step_run_id, required=False) if e.step_run_id else None
    if found is not None:
        index, step = found
        update["steps"] = _with_step(
            s.steps,
            index,
            {
                "input_tokens": step.input_tokens + tokens_in,
                "output_tokens": step.output_tokens + tokens_out,
                "cost_micro_usd": step.cost_micro_usd + e.cost_micro_usd,
            },
        )
    return update


def _plan_approved(s: ProtocolRunState, e: ev.PlanApproved) -> Update:
    return {"plan_approved": True}


def _plan_rejected(s: ProtocolRunState, e: ev.PlanRejected) -> Update:
    return {"plan_feedback": e.reason}


def _pr_ready_requested(s: ProtocolRunState, e: ev.PullRequestReadyRequested) -> Update:
    return {"pr_ready_attempt": e.attempt, "pr_ready_requested": True}


def _pr_marked_ready(s: ProtocolRunState, e: ev.PullRequestMarkedReady) -> Update:
    return {"pr_ready_requested": False, "pr_ready": True}


def _pr_ready_failed(s: ProtocolRunState, e: ev.PullRequestReadyFailed) -> Update:
    return {"pr_ready_requested": False}


def _merge_requested(s: ProtocolRunState, e: ev.MergeRequested) -> Update:
    return _run_status(
        s,
        RunStatus.RUNNING,
        {
            "merge_attempt": e.attempt,
            "merge_requested": True,
            "merge_scheduled": False,
            "merge_sha": e.head_sha,
            "merge_failed_reason": "",
            "blocked_reason": "",
        },
    )


def _merge_scheduled(s: ProtocolRunState, e: ev.MergeScheduled) -> Update:
    return {"merge_scheduled": True}


def _merge_failed(s: ProtocolRunState, e: ev.MergeFailed) -> Update:
    return {"merge_requested": False, "merge_scheduled": False, "merge_failed_reason": e.reason}


def _review_recorded(s: ProtocolRunState, e: ev.ReviewRecorded) -> Update:
    """A reviewer's latest word counts: an approval, a request for changes, or neither once dismissed."""
    review = e.review or ReviewFeedback()
    who = review.reviewer
    update: Update = {"review_keys": s.review_keys | {review_key(review), e.delivery_id} - {""}}
    if not who:
        return update
    approved, changes = s.approved_by - {who}, s.changes_requested_by - {who}
    if review.state is ReviewState.APPROVED:
        approved |= {who}
    elif review.state is ReviewState.CHANGES_REQUESTED:
        changes |= {who}
    elif review.state is ReviewState.COMMENTED:  # a comment leaves a reviewer's verdict as it was
        approved, changes = s.approved_by, s.changes_requested_by
    update["approved_by"], update["changes_requested_by"] = approved, changes
    return update


def review_key(review: ReviewFeedback) -> str:
    """What identifies a review once: its id and what it said (a dismissal reuses the review's id)."""
    return f"{review.review_id}:{review.state.name}" if review.review_id else ""


def _review_fix_requested(s: ProtocolRunState, e: ev.ReviewFixRequested) -> Update:
    attempt = e.review.fix_attempt if e.review else 0
    return _step(s, e.step_run_id, {"review_fix_attempts": attempt, "review_fix_request": e})


def _review_reply_requested(s: ProtocolRunState, e: ev.ReviewReplyRequested) -> Update:
    return _step(s, e.step_run_id, {"review": None})


def _review_replied(s: ProtocolRunState, e: ev.ReviewReplied) -> Update:
    return {"review_replies": s.review_replies | {e.review_id}}


def _budget_warning(s: ProtocolRunState, e: ev.BudgetWarningRecorded) -> Update:
    return {"budget_warnings": s.budget_warnings | {budget_warning_key(e.scope, e.kind, e.step_run_id)}}


def _queued(s: ProtocolRunState, e: ev.ProtocolRunQueued) -> Update:
    return _run_status(s, RunStatus.QUEUED, {})


def _admitted(s: ProtocolRunState, e: ev.ProtocolRunAdmitted) -> Update:
    if s.status is not RunStatus.QUEUED:
        raise InvariantViolation(f"admitted a run that is {s.status.value}, not queued")
    return {}


def _new_step(p: StepPlan) -> StepState:
    return StepState(
        step_run_id=p.step_run_id,
        index=p.index,
        name=p.name,
        step_type=p.step_type,
        engine_id=p.engine_id,
        model=p.model,
        qa_policy=p.qa_policy,
        qa_engine_id=p.qa_engine_id,
        qa_model=p.qa_model,
        file_path=p.file_path,
        policies=p.policies,
        parallel_group=p.parallel_group,
        fallbacks=tuple(p.fallbacks),
        critical=p.critical,
    )


def _noted(s: ProtocolRunState, e: ev.LoopSpent | ev.TriggerRefused | ev.DirectiveRejected) -> Update:
    return {}  # a decision not to act, for the record: what follows from it has its own events


def _loop_taken(s: ProtocolRunState, e: ev.LoopTaken) -> Update:
    """The range goes back to pending: each step that ran gets its next attempt (a new execution, not the
    commit of the previous one found again); steps a trigger queued there are cancelled."""
    reset, superseded = set(e.reset_step_run_ids), set(e.superseded_step_run_ids)
    _, looping = _find_step(s, e.step_run_id)
    steps: list[StepState] = []
    for st in s.steps:
        changes: StepUpdate = {}
        if st.step_run_id in reset:
            ran = st.status is not StepStatus.PENDING
            changes = {**_PENDING_AGAIN, "attempt": st.attempt + 1 if ran else st.attempt}
        elif st.step_run_id in superseded:
            changes = {"status": StepStatus.CANCELLED, "executing": False, "qa_pending": False}
        if st is looping:
            changes["loop_iterations"] = e.iteration
        steps.append(replace(st, changes) if changes else st)
    update: Update = {"steps": tuple(steps)}
    blocked = s.effective_status is RunStatus.BLOCKED and not s.checkpoint_step
    if blocked and not any(st.status in STUCK_STEP_STATUSES for st in steps):
        update = _run_status(s, RunStatus.RUNNING, {**update, "blocked_reason": ""})
    return update


_PENDING_AGAIN: StepUpdate = {
    "status": StepStatus.PENDING,
    "executing": False,
    "owner": "",
    "qa_pending": False,
    "failure_source": FailureSource.UNSPECIFIED,
    "failure_reason": "",
    "ci_fix_request": None,
    "ci_failure": None,
    "review_fix_request": None,
    "review": None,
    "directive": None,
}


def _trigger_queued(s: ProtocolRunState, e: ev.TriggerQueued) -> Update:
    """The queued step comes right after the step that triggered it: the next to run."""
    if e.step is None:
        raise InvariantViolation("trigger_queued without its step")
    index, parent = _find_step(s, e.from_step_run_id)
    queued = _new_step(e.step).model_copy(
        update={
            "prompt": e.prompt,
            "queued_by": e.from_step_run_id,
            "trigger_depth": e.depth,
            "trigger_max_depth": e.max_depth,
            "run_order": (*(parent.run_order or (parent.index,)), e.step.index),
        }
    )
    return {"steps": (*s.steps[: index + 1], queued, *s.steps[index + 1 :])}


def _checkpoint_reached(s: ProtocolRunState, e: ev.CheckpointReached) -> Update:
    _, step = _find_step(s, e.step_run_id)
    reason = f"checkpoint after step {step.name}: {e.reason} (continue, or cancel)"
    return _run_status(s, RunStatus.BLOCKED, {"blocked_reason": reason, "checkpoint_step": e.step_run_id})


def _checkpoint_passed(s: ProtocolRunState, e: ev.CheckpointPassed) -> Update:
    return _run_status(s, RunStatus.RUNNING, {"blocked_reason": "", "checkpoint_step": ""})


def _run_status(s: ProtocolRunState, status: RunStatus, update: Update) -> Update:
    """``update`` plus the run's status — or, while paused, the status it will resume to."""
    if s.status is RunStatus.PAUSED:
        update["paused_from"] = status
    else:
        update["status"] = status
    return update


@overload
def _find_step(s: ProtocolRunState, step_run_id: str) -> tuple[int, StepState]: ...
@overload
def _find_step(
    s: ProtocolRunState, step_run_id: str, *, required: Literal[False]
) -> tuple[int, StepState] | None: ...
def _find_step(
    s: ProtocolRunState, step_run_id: str, *, required: bool = True
) -> tuple[int, StepState] | None:
    """The position and state of a step (``InvariantViolation`` if it is unknown and ``required``)."""
    for index, step in enumerate(s.steps):
        if step.step_run_id == step_run_id:
            return index, step
    if required:
        raise InvariantViolation(f"unknown step {step_run_id}")
    return None


def _with_step(steps: tuple[StepState, ...], index: int, update: StepUpdate) -> tuple[StepState, ...]:
    """``steps`` with the one at ``index`` updated; every other step is the same object."""
    return (*steps[:index], replace(steps[index], update), *steps[index + 1 :])


def _step(s: ProtocolRunState, step_run_id: str, update: StepUpdate) -> Update:
    index, _ = _find_step(s, step_run_id)
    return {"steps": _with_step(s.steps, index, update)}


def _set_steps(
    s: ProtocolRunState, ids: tuple[str, ...], **update: Unpack[StepUpdate]
) -> tuple[StepState, ...]:
    wanted = set(ids)
    unknown = wanted - {st.step_run_id for st in s.steps}
    if unknown:
        raise InvariantViolation(f"unknown steps {sorted(unknown)}")
    for st in s.steps:
        if st.step_run_id in wanted and st.status not in OPEN_STEP_STATUSES | {StepStatus.BLOCKED}:
            raise InvariantViolation(f"cannot cancel step {st.step_run_id} in status {st.status}")
    return tuple(replace(st, update) if st.step_run_id in wanted else st for st in s.steps)


# One handler per event type; a test checks that every member of ``ProtocolRunEvent`` has one.
_HANDLERS: dict[type, Callable[[ProtocolRunState, Any], Update]] = {
    ev.ProtocolRunCreated: _created,
    ev.ProtocolRunPaused: _paused,
    ev.ProtocolRunResumed: _resumed,
    ev.ProtocolRunCancelled: _cancelled,
    ev.ProtocolRunBlocked: _blocked,
    ev.ProtocolRunCompleted: _completed,
    ev.PlanningRequested: _planning_requested,
    ev.PlanningStarted: _planning_started,
    ev.PlanningCompleted: _planning_completed,
    ev.PlanningFailed: _planning_failed,
    ev.StepExecutionRequested: _execution_requested,
    ev.StepExecutionStarted: _execution_started,
    ev.StepAttemptFailed: _attempt_failed,
    ev.StepExecutionCompleted: _execution_completed,
    ev.StepExecutionFailed: _execution_failed,
    ev.QaRequested: _qa_requested,
    ev.QaVerdictRecorded: _qa_verdict,
    ev.StepCompleted: _step_completed,
    ev.StepFailed: _step_failed,
    ev.StepBlocked: _step_blocked,
    ev.BranchPushed: _branch_pushed,
    ev.BranchRestored: _branch_restored,
    ev.BranchDeletionRequested: _branch_deletion_requested,
    ev.BranchDeleted: _branch_deleted,
    ev.PullRequestRequested: _pr_requested,
    ev.PullRequestOpened: _pr_opened,
    ev.PullRequestFailed: _pr_failed,
    ev.PullRequestMerged: _pr_merged,
    ev.PullRequestClosed: _pr_closed,
    ev.CiReported: _ci_reported,
    ev.CiFixRequested: _ci_fix_requested,
    ev.UsageRecorded: _usage,
    ev.BudgetWarningRecorded: _budget_warning,
    ev.PlanApproved: _plan_approved,
    ev.PlanRejected: _plan_rejected,
    ev.PullRequestReadyRequested: _pr_ready_requested,
    ev.PullRequestMarkedReady: _pr_marked_ready,
    ev.PullRequestReadyFailed: _pr_ready_failed,
    ev.MergeRequested: _merge_requested,
    ev.MergeScheduled: _merge_scheduled,
    ev.MergeFailed: _merge_failed,
    ev.ReviewRecorded: _review_recorded,
    ev.ReviewFixRequested: _review_fix_requested,
    ev.ReviewReplyRequested: _review_reply_requested,
    ev.ReviewReplied: _review_replied,
    ev.ProtocolRunQueued: _queued,
    ev.ProtocolRunAdmitted: _admitted,
    ev.JobRetryScheduled: _job_retry,
    ev.EngineFallbackTaken: _fallback_taken,
    ev.GuardrailViolated: _guardrail_violated,
    ev.LoopTaken: _loop_taken,
    ev.LoopSpent: _noted,
    ev.TriggerQueued: _trigger_queued,
    ev.TriggerRefused: _noted,
    ev.CheckpointReached: _checkpoint_reached,
    ev.CheckpointPassed: _checkpoint_passed,
    ev.DirectiveRejected: _noted,
    ev.SpecAudited: _spec_audited,
}


__all__ = ["ProtocolRunEvent", "evolve_protocol_run"]

"""``evolve``: fold one ProtocolRun event into the state. Total over every event of the aggregate."""

from __future__ import annotations

from typing import Any, assert_never

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiStatus,
    ExecutionReason,
    FailureSource,
    StepPlan,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.context import InvariantViolation
from deksdenflow_core.domain.protocol_run.state import (
    OPEN_STEP_STATUSES,
    STUCK_STEP_STATUSES,
    ProtocolRunState,
    RunStatus,
    StepState,
    StepStatus,
)

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
)


def evolve_protocol_run(state: ProtocolRunState, event: ProtocolRunEvent) -> ProtocolRunState:
    """Fold ``event`` into ``state``; raise ``InvariantViolation`` if it cannot apply."""
    if not state.exists and not isinstance(event, ev.ProtocolRunCreated):
        raise InvariantViolation(f"{type(event).__name__} before protocol_run.created")
    if state.is_terminal and _changes_status(event):
        raise InvariantViolation(f"{type(event).__name__} after the run ended ({state.status})")
    new = _apply(state, event)
    return new.model_copy(update={"version": state.version + 1})


def _changes_status(event: ProtocolRunEvent) -> bool:
    """Events that may follow the end of a run are facts that change no status."""
    return not isinstance(
        event,
        ev.UsageRecorded
        | ev.BranchPushed
        | ev.BranchDeletionRequested
        | ev.BranchDeleted
        | ev.PullRequestRequested
        | ev.PullRequestOpened
        | ev.PullRequestFailed
        | ev.PullRequestMerged
        | ev.PullRequestClosed
        | ev.CiReported
        | ev.QaVerdictRecorded,
    )


def _apply(s: ProtocolRunState, e: ProtocolRunEvent) -> ProtocolRunState:
    match e:
        case ev.ProtocolRunCreated():
            if s.exists:
                raise InvariantViolation("protocol run created twice")
            return s.model_copy(
                update={
                    "exists": True,
                    "project_id": e.project_id,
                    "number": e.number,
                    "slug": e.slug,
                    "protocol_name": e.protocol_name,
                    "task_name": e.task_name,
                    "description": e.description,
                    "base_branch": e.base_branch,
                    "protocol_root": e.protocol_root,
                }
            )
        case ev.ProtocolRunPaused():
            if s.status is RunStatus.PAUSED:
                raise InvariantViolation("paused twice")
            return s.model_copy(update={"status": RunStatus.PAUSED, "paused_from": s.status})
        case ev.ProtocolRunResumed():
            if s.status is not RunStatus.PAUSED or s.paused_from is None:
                raise InvariantViolation("resumed a run that is not paused")
            return s.model_copy(update={"status": s.paused_from, "paused_from": None})
        case ev.ProtocolRunCancelled():
            steps = _set_steps(s, e.cancelled_step_run_ids, status=StepStatus.CANCELLED, executing=False)
            return s.model_copy(update={"status": RunStatus.CANCELLED, "paused_from": None, "steps": steps})
        case ev.ProtocolRunBlocked():
            return _run_status(s, RunStatus.BLOCKED, blocked_reason=e.reason)
        case ev.ProtocolRunCompleted():
            steps = _set_steps(s, e.cancelled_step_run_ids, status=StepStatus.CANCELLED, executing=False)
            return s.model_copy(update={"status": RunStatus.COMPLETED, "paused_from": None, "steps": steps})
        case ev.PlanningRequested():
            return _run_status(s, RunStatus.PLANNING, planning_attempt=e.attempt, planning_owner="")
        case ev.PlanningStarted():
            return s.model_copy(update={"planning_owner": e.worker_id})
        case ev.PlanningCompleted():
            steps = tuple(_new_step(p) for p in e.steps)
            return _run_status(s, RunStatus.PLANNED, steps=steps, spec_hash=e.spec_hash, planning_owner="")
        case ev.PlanningFailed():
            return _run_status(s, RunStatus.FAILED, planning_owner="", blocked_reason=e.reason)
        case ev.StepExecutionRequested():
            return _execution_requested(s, e)
        case ev.StepExecutionStarted():
            return _step(s, e.step_run_id, owner=e.worker_id)
        case ev.StepAttemptFailed():
            _require_step(s, e.step_run_id)
            return s
        case ev.StepExecutionCompleted():
            return _step(
                s,
                e.step_run_id,
                status=StepStatus.NEEDS_QA,
                executing=False,
                summary=e.summary,
                commit_sha=e.commit_sha,
                changed_files=e.changed_files,
            )
        case ev.StepExecutionFailed():
            return _step(s, e.step_run_id, executing=False)
        case ev.QaRequested():
            return _step(s, e.step_run_id, qa_attempt=e.qa_attempt, qa_pending=True)
        case ev.QaVerdictRecorded():
            return _step(s, e.step_run_id, qa_pending=False, last_verdict=e.verdict)
        case ev.StepCompleted():
            s = _step(
                s,
                e.step_run_id,
                status=StepStatus.COMPLETED,
                executing=False,
                qa_pending=False,
                ci_fix_request=None,
            )
            return _unblock_if_clear(s)
        case ev.StepFailed():
            return _step(
                s,
                e.step_run_id,
                status=StepStatus.FAILED,
                executing=False,
                qa_pending=False,
                failure_source=e.source,
                failure_reason=e.reason,
            )
        case ev.StepBlocked():
            return _step(
                s, e.step_run_id, status=StepStatus.BLOCKED, executing=False, failure_reason=e.reason
            )
        case ev.BranchPushed():
            return s.model_copy(update={"branch_head_sha": e.commit_sha})
        case ev.BranchDeletionRequested():
            return s.model_copy(update={"branch_deletion_requested": True})
        case ev.BranchDeleted():
            return s.model_copy(update={"branch_deleted": True, "branch_head_sha": ""})
        case ev.PullRequestRequested():
            return s.model_copy(update={"pr_attempt": e.attempt, "pr_requested": True})
        case ev.PullRequestOpened():
            return s.model_copy(update={"pr_requested": False, "pr_number": e.number, "pr_url": e.url})
        case ev.PullRequestFailed():
            return s.model_copy(update={"pr_requested": False})
        case ev.PullRequestMerged():
            return s.model_copy(update={"pr_merged": True, "pr_number": e.number or s.pr_number})
        case ev.PullRequestClosed():
            return s.model_copy(update={"pr_closed": True})
        case ev.CiReported():
            return _ci_reported(s, e)
        case ev.CiFixRequested():
            return _step(s, e.step_run_id, ci_fix_attempts=e.fix_attempt, ci_fix_request=e)
        case ev.UsageRecorded():
            return _usage(s, e)
        case _:
            assert_never(e)


def _execution_requested(s: ProtocolRunState, e: ev.StepExecutionRequested) -> ProtocolRunState:
    """The step runs; a CI fix carries CI's evidence, kept when a resume or requeue asks again."""
    keeps_evidence = e.reason in (ExecutionReason.RESUME, ExecutionReason.REQUEUE)
    evidence = e.ci_failure if e.reason is ExecutionReason.CI_FIX else None
    if keeps_evidence:
        evidence = _require_step(s, e.step_run_id).ci_failure
    s = _step(
        s,
        e.step_run_id,
        status=StepStatus.RUNNING,
        attempt=e.attempt,
        executing=True,
        owner="",
        failure_source=FailureSource.UNSPECIFIED,
        failure_reason="",
        ci_fix_request=None,
        ci_failure=evidence,
    )
    return _run_status(s, RunStatus.RUNNING, blocked_reason="")


def _ci_reported(s: ProtocolRunState, e: ev.CiReported) -> ProtocolRunState:
    s = s.model_copy(update={"ci_delivery_ids": s.ci_delivery_ids | {e.delivery_id} - {""}})
    step = s.step(e.step_run_id) if e.step_run_id else None
    if step is None:
        return s
    if (
        e.status is CiStatus.RUNNING
        and not s.is_terminal
        and step.status in (StepStatus.NEEDS_QA, StepStatus.FAILED)
    ):
        s = _step(s, step.step_run_id, status=StepStatus.RUNNING)
    if e.status is CiStatus.SUCCESS and step.ci_fix_pending:
        s = _step(s, step.step_run_id, ci_fix_request=None)  # CI passed after all (a re-run)
    return s


def _usage(s: ProtocolRunState, e: ev.UsageRecorded) -> ProtocolRunState:
    """Usage counts for the run and, when the call was for a step, for that step too."""
    tokens_in = e.usage.input_tokens if e.usage else 0
    tokens_out = e.usage.output_tokens if e.usage else 0
    if (step := s.step(e.step_run_id) if e.step_run_id else None) is not None:
        s = _step(
            s,
            e.step_run_id,
            input_tokens=step.input_tokens + tokens_in,
            output_tokens=step.output_tokens + tokens_out,
            cost_micro_usd=step.cost_micro_usd + e.cost_micro_usd,
        )
    return s.model_copy(
        update={
            "usage_call_ids": s.usage_call_ids | {e.call_id},
            "input_tokens": s.input_tokens + tokens_in,
            "output_tokens": s.output_tokens + tokens_out,
            "cost_micro_usd": s.cost_micro_usd + e.cost_micro_usd,
        }
    )


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
    )


def _run_status(s: ProtocolRunState, status: RunStatus, **update: Any) -> ProtocolRunState:
    """Set the run's status — or, while paused, the status it will resume to."""
    key = "paused_from" if s.status is RunStatus.PAUSED else "status"
    return s.model_copy(update={**update, key: status})


def _unblock_if_clear(s: ProtocolRunState) -> ProtocolRunState:
    """A blocked run whose last stuck step is resolved goes back to running."""
    if s.effective_status is RunStatus.BLOCKED and not any(
        st.status in STUCK_STEP_STATUSES for st in s.steps
    ):
        return _run_status(s, RunStatus.RUNNING, blocked_reason="")
    return s


def _require_step(s: ProtocolRunState, step_run_id: str) -> StepState:
    step = s.step(step_run_id)
    if step is None:
        raise InvariantViolation(f"unknown step {step_run_id}")
    return step


def _step(s: ProtocolRunState, step_run_id: str, **update: Any) -> ProtocolRunState:
    _require_step(s, step_run_id)
    steps = tuple(st.model_copy(update=update) if st.step_run_id == step_run_id else st for st in s.steps)
    return s.model_copy(update={"steps": steps})


def _set_steps(s: ProtocolRunState, ids: tuple[str, ...], **update: Any) -> tuple[StepState, ...]:
    wanted = set(ids)
    unknown = wanted - {st.step_run_id for st in s.steps}
    if unknown:
        raise InvariantViolation(f"unknown steps {sorted(unknown)}")
    for st in s.steps:
        if st.step_run_id in wanted and st.status not in OPEN_STEP_STATUSES | {StepStatus.BLOCKED}:
            raise InvariantViolation(f"cannot cancel step {st.step_run_id} in status {st.status}")
    return tuple(st.model_copy(update=update) if st.step_run_id in wanted else st for st in s.steps)


__all__ = ["ProtocolRunEvent", "evolve_protocol_run"]

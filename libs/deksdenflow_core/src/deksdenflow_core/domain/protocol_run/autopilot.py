"""Autopilot: what a run asks for next, by itself, once a decision is taken.

``decide`` calls :func:`next_work` on the state its events lead to, and appends what it returns to the
same decision: the decision that completes one piece of work also requests the next. Nothing here acts
on its own, so every guard of ``decide`` holds for autopilot as for a person: a paused, blocked,
cancelled or completed run asks for nothing; a result that changes nothing (a duplicate, a stale
attempt) produces no decision and so no next work either.

What comes next, in order:
* a step awaiting QA whose QA is not requested (a pause held it back) gets its QA;
* the draft PR/MR opens after the first pushed step (or when every step is done, per the policy);
* the next pending step runs, once nothing else of the run is in flight and the plan is approved
  (``plan_approval: required``) and not held back by a spec audit's findings — or the next steps of a
  parallel group, up to the policy's ``max_parallel_steps`` executing at once;
* every step completed: the PR/MR is marked ready for review (its reviewers asked), and with
  ``merge: when_green`` merged once CI is green on the head commit with every required check passed.
"""

from __future__ import annotations

from itertools import takewhile

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiStatus,
    ExecutionReason,
    MergeMethod,
    MergePolicy,
    PrOpening,
    PrPolicy,
    QaPolicy,
    QaReason,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.protocol_run import audit
from deksdenflow_core.domain.protocol_run.evolve import ProtocolRunEvent
from deksdenflow_core.domain.protocol_run.state import ProtocolRunState, RunStatus, StepState, StepStatus

# Statuses in which a run's steps may be asked for.
_ADVANCING = frozenset({RunStatus.PLANNED, RunStatus.RUNNING})
# Statuses in which its PR/MR may be opened or marked ready (a completed run still gets its PR ready).
_PR_WORK = frozenset({RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.BLOCKED, RunStatus.COMPLETED})


def next_work(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """What an autopilot run in ``state`` asks for now (nothing for a manual run)."""
    if not state.autopilot:
        return []
    events: list[ProtocolRunEvent] = []
    if state.status in _PR_WORK:
        events.extend(_pull_request(state))
    if state.status in _ADVANCING:
        if held_back := _qa_held_back(state):
            events.extend(held_back)
        elif (fix := _review_fix(state)) is not None:
            events.append(fix)
        elif steps := _next_steps(state):
            events.extend(steps)
        elif merge_ready(state):
            events.append(merge_request(state, state.merge_attempt + 1))
    return events


def merge_ready(state: ProtocolRunState) -> bool:
    """True when ``merge: when_green`` may merge: every step passed QA (completed), the PR/MR is open
    (and ready, if the policy marks it so), CI's latest word on the head commit is success with no check
    failing or running there, and every required check passed on it."""
    if not state.merges_when_green or state.merge_requested or state.pr_merged:
        return False
    if not state.steps or any(s.status is not StepStatus.COMPLETED for s in state.steps):
        return False
    pr = state.run_policy.pr or PrPolicy()
    if not state.pr_number or state.pr_closed or state.pr_requested:
        return False
    if pr.ready_when_done and not state.pr_ready:
        return False
    head = state.branch_head_sha
    if not head or state.ci_green_sha != head:
        return False
    if state.merge_failed_reason and state.merge_sha == head:
        return False  # refused on this very commit: a person (or a new commit) decides
    checks = [c for c in state.ci_checks if c.head_sha == head]
    if any(c.status is not CiStatus.SUCCESS for c in checks):
        return False
    merge = state.run_policy.merge or MergePolicy()
    if state.changes_requested_by or len(state.approved_by) < (merge.required_approvals or 0):
        return False
    return all(
        any(run_policy.check_matches(required, c.check) for c in checks) for required in merge.required_checks
    )


def merge_request(state: ProtocolRunState, attempt: int) -> ev.MergeRequested:
    merge = state.run_policy.merge or MergePolicy()
    method = MergeMethod.MERGE if merge.method is MergeMethod.UNSPECIFIED else merge.method
    return ev.MergeRequested(attempt=attempt, head_sha=state.branch_head_sha, method=method)


def _qa_held_back(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """QA of steps that finished executing while the run was paused (QA is not requested then)."""
    return [
        ev.QaRequested(
            step_run_id=s.step_run_id,
            qa_attempt=s.qa_attempt + 1,
            policy=QaPolicy.FULL if s.qa_policy in (QaPolicy.SKIP, QaPolicy.UNSPECIFIED) else s.qa_policy,
            reason=QaReason.AFTER_EXEC,
        )
        for s in state.steps
        if s.status is StepStatus.NEEDS_QA and not s.qa_pending and not s.executing
    ]


def _pull_request(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    pr = state.run_policy.pr or PrPolicy()
    has_pr = bool(state.pr_number) and not state.pr_closed
    # Only the first PR is autopilot's: one a person closed, or that failed to open, stays so. The plan's
    # own commit is pushed too, but a PR opens on work: once a step pushed a commit.
    first = not has_pr and not state.pr_requested and state.pr_attempt == 0 and bool(state.branch_head_sha)
    step_pushed = any(s.commit_sha for s in state.steps)
    due = (pr.open is PrOpening.AFTER_FIRST_PUSH and step_pushed) or (
        pr.open is PrOpening.WHEN_DONE and state.all_steps_done
    )
    if first and due:
        return [ev.PullRequestRequested(attempt=1)]
    if (
        pr.ready_when_done
        and has_pr
        and not state.pr_merged
        and not state.pr_ready
        and not state.pr_ready_requested
        and state.pr_ready_attempt == 0
        and state.steps
        and all(s.status is StepStatus.COMPLETED for s in state.steps)
    ):
        return [ev.PullRequestReadyRequested(attempt=1, reviewers=pr.reviewers)]
    return []


def _review_fix(state: ProtocolRunState) -> ev.StepExecutionRequested | None:
    """A review fix that waits, once no other work of the run is in flight."""
    waiting = next((s for s in state.steps if s.review_fix_request is not None and not s.executing), None)
    if waiting is None or waiting.review_fix_request is None:
        return None
    others = [s for s in state.steps if s.step_run_id != waiting.step_run_id]
    if (
        _in_flight(others)
        or waiting.qa_pending
        or waiting.status in (StepStatus.RUNNING, StepStatus.NEEDS_QA)
    ):
        return None
    return ev.StepExecutionRequested(
        step_run_id=waiting.step_run_id,
        attempt=waiting.attempt + 1,
        reason=ExecutionReason.REVIEW_FIX,
        review=waiting.review_fix_request.review,
    )


def _in_flight(steps: list[StepState]) -> bool:
    return any(
        s.executing
        or s.qa_pending
        or s.ci_fix_pending
        or s.status in (StepStatus.RUNNING, StepStatus.NEEDS_QA)
        for s in steps
    )


def _next_steps(state: ProtocolRunState) -> list[ev.StepExecutionRequested]:
    """The next pending step, once nothing else of the run is in flight, failed or blocked. When the run
    policy lets steps of a parallel group execute at once (``max_parallel_steps``), the group's next
    pending steps up to that many executing, beside the group's own steps still in flight."""
    if state.awaits_plan_approval or audit.held_back(state):
        return []
    pending = [s for s in state.steps if s.status is StepStatus.PENDING]
    if not pending:
        return []
    busy = [s for s in state.steps if _busy(s)]
    group, limit = pending[0].parallel_group, run_policy.parallel_steps(state.run_policy)
    if limit == 1 or not group:
        return [] if busy else [_execution(pending[0])]
    if any(s.parallel_group != group or s.status in _STUCK for s in busy):
        return []
    executing = sum(1 for s in busy if s.executing or s.status is StepStatus.RUNNING)
    members = list(takewhile(lambda s: s.parallel_group == group, pending))
    return [_execution(s) for s in members[: max(0, limit - executing)]]


def _execution(step: StepState) -> ev.StepExecutionRequested:
    return ev.StepExecutionRequested(
        step_run_id=step.step_run_id, attempt=step.attempt, reason=ExecutionReason.AUTOPILOT
    )


_STUCK = frozenset({StepStatus.FAILED, StepStatus.BLOCKED})


def _busy(step: StepState) -> bool:
    """The step holds the run back: work of it is in flight, or it failed or is blocked."""
    return (
        step.executing
        or step.qa_pending
        or step.ci_fix_pending
        or step.status in (StepStatus.RUNNING, StepStatus.NEEDS_QA, StepStatus.FAILED, StepStatus.BLOCKED)
    )


def _with_a_worker(state: ProtocolRunState) -> bool:
    """Some work of the run is with a worker (an execution, a QA, a fix, the PR, a merge)."""
    return (
        state.pr_requested
        or state.pr_ready_requested
        or state.merge_requested
        or any(s.executing or s.qa_pending or s.ci_fix_pending or s.review_fix_request for s in state.steps)
    )


def waiting_for(state: ProtocolRunState) -> str | None:
    """What a run waits on that is neither a worker nor over: ``queue`` (a slot under the run limits);
    ``checkpoint`` (a person to continue, or cancel, after a step's checkpoint); ``spec`` (a planned run
    whose plan a spec audit found wrong: to be planned again); on a manual run, ``action`` (nothing is
    in flight: a person runs the next step, its QA, the PR…); on an autopilot run, ``plan_approval`` (a
    person); once every step is completed, ``pull_request`` (none is open: it failed or was closed —
    open_pr), ``review`` (approvals, a reviewer who asked for changes to look again, or — merge: never —
    a person to merge), ``ci`` (green CI on its head commit, to merge), ``merge`` (the forge merging it);
    None otherwise."""
    if state.status is RunStatus.QUEUED:
        return "queue"
    if state.is_terminal or state.status is RunStatus.PAUSED:
        return None
    if state.checkpoint_step and state.status is RunStatus.BLOCKED:
        return "checkpoint"
    if audit.held_back(state):
        return "spec"
    if not state.autopilot:
        idle = state.status in (RunStatus.PLANNED, RunStatus.RUNNING) and not _with_a_worker(state)
        return "action" if idle else None
    if state.awaits_plan_approval:
        return "plan_approval"
    done = bool(state.steps) and all(s.status is StepStatus.COMPLETED for s in state.steps)
    if not done or not state.ends_with_pr or state.status is not RunStatus.RUNNING:
        return None
    if not state.pr_number or state.pr_closed:
        return None if state.pr_requested else "pull_request"
    if state.merge_requested or state.merge_scheduled:
        return "merge"
    merge = state.run_policy.merge or MergePolicy()
    if not state.merges_when_green:
        return "review"
    if state.changes_requested_by or len(state.approved_by) < (merge.required_approvals or 0):
        return "review"
    return "ci"

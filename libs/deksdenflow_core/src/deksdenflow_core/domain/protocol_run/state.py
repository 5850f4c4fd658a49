"""State of a protocol run and its steps, as folded from the run's events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    AgentDirective,
    CiFailureEvidence,
    CiRunRef,
    CiStatus,
    FailureSource,
    ImportedPlan,
    JobRetry,
    MergeMode,
    PlanApproval,
    PrOpening,
    QaPolicy,
    QaVerdict,
    ReviewFeedback,
    RunPolicy,
    StepPlan,
    StepPolicies,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1.protocol_run import (
    CiFixRequested,
    ReviewFixRequested,
)
from deksdenflow_core.domain import run_policy

AGGREGATE_TYPE = "protocol_run"

# A set of ids, written out sorted. A set iterates in an order that depends on the process's string
# hashing (salted per process), so the state written to the read model must not follow it: the live
# projector and a rebuild of the same log write the same bytes.
IdSet = Annotated[frozenset[str], PlainSerializer(sorted, return_type=list[str])]


class RunStatus(StrEnum):
    """Status of a protocol run (names as users know them)."""

    PENDING = "pending"
    # Started while run limits are set: waits for a slot, in order.
    QUEUED = "queued"
    PLANNING = "planning"
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    # A step failed or was blocked: a person must retry, approve or cancel.
    BLOCKED = "blocked"
    # Planning failed for good: there is no plan; start re-plans, cancel gives up.
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.CANCELLED, RunStatus.COMPLETED})


class StepStatus(StrEnum):
    """Status of a step run."""

    PENDING = "pending"
    RUNNING = "running"
    NEEDS_QA = "needs_qa"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


OPEN_STEP_STATUSES = frozenset({StepStatus.PENDING, StepStatus.RUNNING, StepStatus.NEEDS_QA})
DONE_STEP_STATUSES = frozenset({StepStatus.COMPLETED, StepStatus.CANCELLED})
STUCK_STEP_STATUSES = frozenset({StepStatus.FAILED, StepStatus.BLOCKED})
# A push names this many of its commit's ancestors (BranchPushed.ancestors). A push recorded late is
# known for what it is when any of the (up to this many) pushes made after it, directly or onto one
# another, was recorded before it.
MAX_PUSH_ANCESTORS = 16


class StepState(BaseModel):
    """One step of the run."""

    model_config = ConfigDict(frozen=True)

    step_run_id: str
    index: int
    name: str
    step_type: StepType
    engine_id: str = ""
    model: str = ""
    qa_policy: QaPolicy = QaPolicy.FULL
    qa_engine_id: str = ""
    qa_model: str = ""
    file_path: str = ""
    # Steps of one group may execute at once when the run policy allows (``run_policy.parallel_steps``).
    parallel_group: str = ""
    # The step's own fallback chain for execution ("engine:model"); empty: the project's for the phase.
    fallbacks: tuple[str, ...] = ()
    # Judged by a second QA reviewer too (both must say PASS).
    critical: bool = False
    status: StepStatus = StepStatus.PENDING
    # Execution attempt: 0 for the first, +1 per retry. ``retries`` equals it.
    attempt: int = 0
    # True between step_execution_requested and its completion or failure.
    executing: bool = False
    owner: str = ""
    qa_attempt: int = 0
    qa_pending: bool = False
    last_verdict: QaVerdict = QaVerdict.UNSPECIFIED
    # Where the last QA verdict's report was written in the repository ("" when it names none).
    last_report_path: str = ""
    summary: str = ""
    commit_sha: str = ""
    changed_files: tuple[str, ...] = ()
    failure_source: FailureSource = FailureSource.UNSPECIFIED
    failure_reason: str = ""
    # Usage of the agent calls made for this step (execution and QA), for per-step budgets.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    # CI fixes requested for this step so far (the budget counts them).
    ci_fix_attempts: int = 0
    # The CI fix that was requested and awaits its evidence (the failing job's log), if any.
    ci_fix_request: CiFixRequested | None = None
    # What CI said when the current execution is a CI fix (kept across a resume or requeue).
    ci_failure: CiFailureEvidence | None = None
    # Review fixes requested for this step so far (the policy's review_fix_attempts counts them).
    review_fix_attempts: int = 0
    # A review fix waiting for the run to be free of other work.
    review_fix_request: ReviewFixRequested | None = None
    # What the reviewer asked when the current execution is a review fix (kept across resume/requeue).
    review: ReviewFeedback | None = None
    # Loop, trigger and checkpoint policies of the plan (None: none).
    policies: StepPolicies | None = None
    # A step a trigger queued: what its agent is asked (its step file, written when it runs), the step
    # whose trigger queued it, how deep in the chain it is, and how deep the chain may go.
    prompt: str = ""
    queued_by: str = ""
    trigger_depth: int = 0
    trigger_max_depth: int = 0
    # Where the step stands in the run: the indexes of the planned step and of each triggered step down to
    # this one (empty for a planned step: its index alone). Steps are shown sorted by it.
    run_order: tuple[int, ...] = ()
    # Times this step's loop policy was taken (never reset: the bound on loops of a run).
    loop_iterations: int = 0
    # What the agent of the latest execution asked of the run (None: nothing, or not yet executed).
    directive: AgentDirective | None = None

    @property
    def ci_fix_pending(self) -> bool:
        return self.ci_fix_request is not None

    @property
    def retries(self) -> int:
        return self.attempt


class CiCheckState(BaseModel):
    """The latest report of one line of CI (a workflow, check or pipeline) on one commit."""

    model_config = ConfigDict(frozen=True)

    head_sha: str
    check: str
    run_id: int = 0
    attempt: int = 0
    updated_at_ms: int = 0
    status: CiStatus = CiStatus.UNSPECIFIED

    @property
    def position(self) -> tuple[int, int, int, int]:
        return ci_position(self.run_id, self.attempt, self.updated_at_ms, self.status)


def ci_position(run_id: int, attempt: int, updated_at_ms: int, status: CiStatus) -> tuple[int, int, int, int]:
    """Where a report stands in the life of its line of CI on a commit: a later run (a higher id), a later
    attempt of it, a later time, and at equal times a finished run after a running one. Ids and times
    the forge did not give are 0, so what is known still orders the rest."""
    finished = 1 if status in (CiStatus.SUCCESS, CiStatus.FAILURE) else 0
    return (run_id, attempt, updated_at_ms, finished)


def ci_ref_position(ref: CiRunRef, status: CiStatus) -> tuple[int, int, int, int]:
    return ci_position(ref.run_id, ref.attempt, ref.updated_at_ms, status)


class ProtocolRunState(BaseModel):
    """The folded state of one protocol run."""

    model_config = ConfigDict(frozen=True)

    protocol_run_id: str
    exists: bool = False
    project_id: str = ""
    number: int = 0
    slug: str = ""
    protocol_name: str = ""
    task_name: str = ""
    description: str = ""
    base_branch: str = ""
    protocol_root: str = ""
    status: RunStatus = RunStatus.PENDING
    # The status a paused run returns to on resume.
    paused_from: RunStatus | None = None
    planning_attempt: int = 0
    planning_owner: str = ""
    spec_hash: str = ""
    steps: tuple[StepState, ...] = ()
    # The plan as it was accepted (every field of its steps: policies, fallbacks, labels), which a spec
    # audit checks again; empty for runs folded before it was kept (their steps say what it was).
    plan: tuple[StepPlan, ...] = ()
    # What the latest spec audit found wrong with the plan under the rules of ``spec_rules_version``
    # (empty: nothing, or no audit since it was planned). A planned run with findings may not go on.
    spec_findings: tuple[str, ...] = ()
    spec_rules_version: int = 0
    blocked_reason: str = ""
    pr_attempt: int = 0
    pr_requested: bool = False
    pr_number: int = 0
    pr_url: str = ""
    pr_merged: bool = False
    pr_closed: bool = False
    branch_head_sha: str = ""
    # The commits the recorded pushes put on the branch, with the ancestors each named
    # (BranchPushed.ancestors): a push of one of them is an earlier push recorded late.
    branch_commits: IdSet = frozenset()
    branch_deletion_requested: bool = False
    branch_deleted: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    usage_call_ids: IdSet = frozenset()
    # Budgets whose warning share was crossed (``budget_warning_key``).
    budget_warnings: IdSet = frozenset()
    ci_delivery_ids: IdSet = frozenset()
    # The latest report of each line of CI on each commit (reports that carry their CI run).
    ci_checks: tuple[CiCheckState, ...] = ()
    # The commit whose latest CI report (not stale, not held) said success; "" after a failure or a start.
    ci_green_sha: str = ""
    # How the run advances (resolved when it was created; MANUAL for runs recorded before policies).
    run_policy: RunPolicy = run_policy.MANUAL
    # plan_approval: required — a person approved the current plan.
    plan_approved: bool = False
    # Why a person rejected the previous plan (given to the planner).
    plan_feedback: str = ""
    pr_ready_attempt: int = 0
    pr_ready_requested: bool = False
    # The open PR/MR was marked ready for review.
    pr_ready: bool = False
    merge_attempt: int = 0
    merge_requested: bool = False
    # The forge will merge when its pipeline succeeds.
    merge_scheduled: bool = False
    # The head commit the latest merge was requested on.
    merge_sha: str = ""
    merge_failed_reason: str = ""
    # The latest error any job or agent call on the run met (kept after it passed, for the record).
    last_error: str = ""
    # The latest job on the run that failed and will be tried again, until something else happens on
    # the run (its result, a person's action); with several jobs in flight, the latest to fail.
    retry: JobRetry | None = None
    # A plan imported from a spec written elsewhere (planning writes it instead of asking an agent).
    imported: ImportedPlan | None = None
    # Reviewers whose latest word on the PR/MR is an approval, or a request for changes.
    approved_by: IdSet = frozenset()
    changes_requested_by: IdSet = frozenset()
    # Reviews already taken ("<review id>:<state>" and delivery ids): a webhook delivered twice is one.
    review_keys: IdSet = frozenset()
    # Reviews answered on the PR/MR (their ids): a reply recorded twice is recorded once.
    review_replies: IdSet = frozenset()
    # The step after which the run stopped at a checkpoint, waiting for a person ("" when not stopped).
    checkpoint_step: str = ""
    version: int = 0

    @classmethod
    def initial(cls, protocol_run_id: str) -> ProtocolRunState:
        return cls(protocol_run_id=protocol_run_id)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def effective_status(self) -> RunStatus:
        """The status work is judged by: for a paused run, the one it will resume to."""
        if self.status is RunStatus.PAUSED and self.paused_from is not None:
            return self.paused_from
        return self.status

    def step(self, step_run_id: str) -> StepState | None:
        return next((s for s in self.steps if s.step_run_id == step_run_id), None)

    def step_by_commit(self, sha: str) -> StepState | None:
        """The step whose execution produced commit ``sha`` (the latest such step)."""
        if not sha:
            return None
        matches = [s for s in self.steps if s.commit_sha and s.commit_sha == sha]
        return matches[-1] if matches else None

    def ci_check(self, head_sha: str, check: str) -> CiCheckState | None:
        """The latest report of ``check`` on commit ``head_sha``, if any came."""
        return next((c for c in self.ci_checks if c.head_sha == head_sha and c.check == check), None)

    @property
    def autopilot(self) -> bool:
        return run_policy.is_autopilot(self.run_policy)

    @property
    def awaits_plan_approval(self) -> bool:
        """Planned, and its plan needs a person's approval that has not come."""
        return (
            self.effective_status is RunStatus.PLANNED
            and self.run_policy.plan_approval is PlanApproval.REQUIRED
            and not self.plan_approved
        )

    @property
    def all_steps_done(self) -> bool:
        return bool(self.steps) and all(s.status in DONE_STEP_STATUSES for s in self.steps)

    @property
    def ends_with_pr(self) -> bool:
        """An autopilot run that opens a PR/MR ends with it: merged (completed), or closed unmerged once
        every step is done. Until then a completed set of steps waits for reviews (and fixes them)."""
        pr = self.run_policy.pr
        return self.autopilot and pr is not None and pr.open is not PrOpening.NEVER

    @property
    def merges_when_green(self) -> bool:
        """Autopilot merges the PR; the run completes when it is merged, not when its steps are done."""
        merge = self.run_policy.merge
        return self.autopilot and merge is not None and merge.mode is MergeMode.WHEN_GREEN

    @property
    def executing_step(self) -> StepState | None:
        return next((s for s in self.steps if s.executing), None)


def budget_warning_key(scope: str, kind: str, step_run_id: str) -> str:
    """What a budget warning is recorded once for: a step's budget per step, the others per run."""
    return f"step/{step_run_id}/{kind}" if scope == "step" else f"{scope}/{kind}"

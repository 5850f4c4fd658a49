"""State of a protocol run and its steps, as folded from the run's events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    FailureSource,
    QaPolicy,
    QaVerdict,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1.protocol_run import CiFixRequested

AGGREGATE_TYPE = "protocol_run"

# A set of ids, written out sorted. A set iterates in an order that depends on the process's string
# hashing (salted per process), so the state written to the read model must not follow it: the live
# projector and a rebuild of the same log write the same bytes.
IdSet = Annotated[frozenset[str], PlainSerializer(sorted, return_type=list[str])]


class RunStatus(StrEnum):
    """Status of a protocol run (names as users know them)."""

    PENDING = "pending"
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
    status: StepStatus = StepStatus.PENDING
    # Execution attempt: 0 for the first, +1 per retry. ``retries`` equals it.
    attempt: int = 0
    # True between step_execution_requested and its completion or failure.
    executing: bool = False
    owner: str = ""
    qa_attempt: int = 0
    qa_pending: bool = False
    last_verdict: QaVerdict = QaVerdict.UNSPECIFIED
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

    @property
    def ci_fix_pending(self) -> bool:
        return self.ci_fix_request is not None

    @property
    def retries(self) -> int:
        return self.attempt


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
    blocked_reason: str = ""
    pr_attempt: int = 0
    pr_requested: bool = False
    pr_number: int = 0
    pr_url: str = ""
    pr_merged: bool = False
    pr_closed: bool = False
    branch_head_sha: str = ""
    branch_deletion_requested: bool = False
    branch_deleted: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    usage_call_ids: IdSet = frozenset()
    ci_delivery_ids: IdSet = frozenset()
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

    @property
    def executing_step(self) -> StepState | None:
        return next((s for s in self.steps if s.executing), None)

"""What one event changes in a run or a step, typed: a misspelt field is a type error, not a new attribute.

``evolve`` builds each new state from the old one plus the fields that change. Those changes are plain
dicts at run time (the fold is the projector's hot path, and a dict merge is the cheapest copy), but
their keys and value types are declared here, so mypy checks every key a handler writes against the
state's fields. ``tests/domain/test_state_updates.py`` holds the declarations to the models' fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict, TypeVar

from pydantic import BaseModel

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    AgentDirective,
    CiFailureEvidence,
    FailureSource,
    ImportedPlan,
    JobRetry,
    QaVerdict,
    ReviewFeedback,
    RunPolicy,
    StepPlan,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1.protocol_run import (
    CiFixRequested,
    ReviewFixRequested,
)
from deksdenflow_core.domain.protocol_run.state import CiCheckState, RunStatus, StepState, StepStatus

__all__ = ["RunUpdate", "StepUpdate", "replace"]


class StepUpdate(TypedDict, total=False):
    """Fields of a :class:`StepState` that an event may change (identity and plan fields never do)."""

    status: StepStatus
    attempt: int
    executing: bool
    owner: str
    qa_attempt: int
    qa_pending: bool
    last_verdict: QaVerdict
    last_report_path: str
    summary: str
    commit_sha: str
    changed_files: tuple[str, ...]
    failure_source: FailureSource
    failure_reason: str
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    ci_fix_attempts: int
    ci_fix_request: CiFixRequested | None
    ci_failure: CiFailureEvidence | None
    review_fix_attempts: int
    review_fix_request: ReviewFixRequested | None
    review: ReviewFeedback | None
    loop_iterations: int
    directive: AgentDirective | None


class RunUpdate(TypedDict, total=False):
    """Fields of a :class:`ProtocolRunState` that an event may change (all but its id)."""

    exists: bool
    project_id: str
    number: int
    slug: str
    protocol_name: str
    task_name: str
    description: str
    base_branch: str
    protocol_root: str
    status: RunStatus
    paused_from: RunStatus | None
    planning_attempt: int
    planning_owner: str
    spec_hash: str
    steps: tuple[StepState, ...]
    plan: tuple[StepPlan, ...]
    spec_findings: tuple[str, ...]
    spec_rules_version: int
    blocked_reason: str
    pr_attempt: int
    pr_requested: bool
    pr_number: int
    pr_url: str
    pr_merged: bool
    pr_closed: bool
    branch_head_sha: str
    branch_commits: frozenset[str]
    branch_deletion_requested: bool
    branch_deleted: bool
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    usage_call_ids: frozenset[str]
    budget_warnings: frozenset[str]
    ci_delivery_ids: frozenset[str]
    ci_checks: tuple[CiCheckState, ...]
    ci_green_sha: str
    run_policy: RunPolicy
    plan_approved: bool
    plan_feedback: str
    pr_ready_attempt: int
    pr_ready_requested: bool
    pr_ready: bool
    merge_attempt: int
    merge_requested: bool
    merge_scheduled: bool
    merge_sha: str
    merge_failed_reason: str
    last_error: str
    retry: JobRetry | None
    imported: ImportedPlan | None
    approved_by: frozenset[str]
    changes_requested_by: frozenset[str]
    review_keys: frozenset[str]
    review_replies: frozenset[str]
    checkpoint_step: str
    version: int


_M = TypeVar("_M", bound=BaseModel)
_object_setattr = object.__setattr__
_new = object.__new__


def replace(model: _M, update: Mapping[str, object]) -> _M:
    """``model.model_copy(update=update)`` without its overhead: a new instance (no validation, as
    with ``model_copy``) sharing every value not updated. For the states here, which have no private
    attributes and no extra fields (it sets both to None). Callers pass a :class:`RunUpdate` or a
    :class:`StepUpdate`, which is what types the keys."""
    new = _new(type(model))
    _object_setattr(new, "__dict__", {**model.__dict__, **update})
    fields_set = model.__pydantic_fields_set__
    if not update.keys() <= fields_set:  # else share it: nothing changes a frozen model's set
        fields_set = fields_set | update.keys()
    _object_setattr(new, "__pydantic_fields_set__", fields_set)
    _object_setattr(new, "__pydantic_extra__", None)
    _object_setattr(new, "__pydantic_private__", None)
    return new

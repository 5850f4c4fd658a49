# Generated from deksdenflow/events/v1/protocol_run.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/events/v1/protocol_run.proto (proto package deksdenflow.events.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class ProtocolRunCreated(_base.ContractModel):
    """A protocol was opened. The system numbered it: name = branch = "NNNN-slug", unique per project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunCreated"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.created"

    protocol_run_id: str = ""
    project_id: str = ""
    number: int = _pydantic.Field(
        default=0, description="1 + the highest number among the project's protocols."
    )
    slug: str = ""
    protocol_name: str = _pydantic.Field(
        default="", description='"NNNN-slug": the protocol\'s name and its branch.'
    )
    task_name: str = ""
    description: str = ""
    base_branch: str = ""
    protocol_root: str = _pydantic.Field(default="", description='".protocols/NNNN-slug".')
    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = _pydantic.Field(
        default=None,
        description="The run's policy, resolved at creation (the project's, with the protocol's overrides). Unset on runs\ncreated before run policies: they are manual.",
    )
    imported: _deksdenflow_common_v1_common.ImportedPlan | None = _pydantic.Field(
        default=None,
        description="A plan imported from a spec written elsewhere: planning writes it instead of asking an agent.",
    )


class ProtocolRunPaused(_base.ContractModel):
    """The run was paused; workers start no new work for it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunPaused"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.paused"


class ProtocolRunResumed(_base.ContractModel):
    """The run was resumed and returns to the status it had when paused."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunResumed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.resumed"


class ProtocolRunCancelled(_base.ContractModel):
    """The run was cancelled. Its pending, running and needs_qa steps were cancelled with it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunCancelled"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.cancelled"

    reason: str = ""
    cancelled_step_run_ids: tuple[str, ...] = ()


class ProtocolRunBlocked(_base.ContractModel):
    """The run is blocked until a person acts (retry, approve, answer)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunBlocked"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.blocked"

    reason: str = ""
    step_run_id: str = _pydantic.Field(default="", description="The step that blocked it, if any.")


class ProtocolRunCompleted(_base.ContractModel):
    """The run completed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunCompleted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.completed"

    reason: _typing.Annotated[
        _deksdenflow_common_v1_common.RunCompletionReason,
        _base.open_enum_field(_deksdenflow_common_v1_common.RunCompletionReason),
    ] = _deksdenflow_common_v1_common.RunCompletionReason.UNSPECIFIED
    cancelled_step_run_ids: tuple[str, ...] = _pydantic.Field(
        default=(), description="Steps still open when a merge completed the run; they were cancelled."
    )


class PlanningRequested(_base.ContractModel):
    """Planning was requested from the codex worker."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanningRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.planning_requested"

    feedback: str = _pydantic.Field(
        default="",
        description="Why the previous plan was rejected, for the planner to take into account; empty otherwise.",
    )
    attempt: int = _pydantic.Field(default=0, description="1 for the first plan, +1 for every re-plan.")


class PlanningStarted(_base.ContractModel):
    """A worker took the planning job (ownership, so redelivery does not run it twice)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanningStarted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.planning_started"

    attempt: int = 0
    worker_id: str = ""


class PlanningCompleted(_base.ContractModel):
    """The plan was written to .protocols/NNNN-slug/ and accepted; the steps exist from now on."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanningCompleted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.planning_completed"

    attempt: int = 0
    steps: tuple[_deksdenflow_common_v1_common.StepPlan, ...] = ()
    spec_hash: str = _pydantic.Field(
        default="", description="First 12 hex of the SHA-256 of the canonical JSON of the spec."
    )
    commit_sha: str = _pydantic.Field(
        default="", description="Commit on the protocol branch that holds the plan files."
    )
    prompt_version: str = _pydantic.Field(default="", description="Content hash of the prompt used.")
    engine_id: str = ""
    model: str = ""
    decompose_prompt_version: str = _pydantic.Field(
        default="",
        description='Content hash of the decompose prompt that refined the step files; "" when decomposition did not run.',
    )
    steps_refined: int = _pydantic.Field(default=0, description="Step files the decomposition refined.")
    steps_kept_as_planned: int = _pydantic.Field(
        default=0,
        description="Step files whose refinement stayed invalid, so the planner's file was kept (a note in log.md).",
    )


class PlanningFailed(_base.ContractModel):
    """Planning failed for good (invalid output after retry, engine error, invalid spec)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanningFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.planning_failed"

    attempt: int = 0
    reason: str = ""


class StepExecutionRequested(_base.ContractModel):
    """Execution of a step was requested from the codex worker."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepExecutionRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_execution_requested"

    step_run_id: str = ""
    attempt: int = _pydantic.Field(
        default=0, description="0 for the first execution, retries + 1 for each retry."
    )
    reason: _typing.Annotated[
        _deksdenflow_common_v1_common.ExecutionReason,
        _base.open_enum_field(_deksdenflow_common_v1_common.ExecutionReason),
    ] = _deksdenflow_common_v1_common.ExecutionReason.UNSPECIFIED
    instructions: str = _pydantic.Field(
        default="", description="Evidence for the agent, e.g. a CI log excerpt for a CI fix."
    )
    ci_failure: _deksdenflow_common_v1_common.CiFailureEvidence | None = _pydantic.Field(
        default=None, description="For a CI fix (reason CI_FIX): what failed."
    )
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = _pydantic.Field(
        default=None, description="What a reviewer asked for when the execution is a review fix."
    )


class StepExecutionStarted(_base.ContractModel):
    """A worker took the step (ownership)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepExecutionStarted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_execution_started"

    step_run_id: str = ""
    attempt: int = 0
    worker_id: str = ""


class StepAttemptFailed(_base.ContractModel):
    """One try of an attempt failed and will be retried by the worker. The step does not fail."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepAttemptFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_attempt_failed"

    step_run_id: str = ""
    attempt: int = 0
    try_number: int = 0
    reason: str = ""
    tries: int = _pydantic.Field(
        default=0,
        description="How many tries the worker makes, and when this one failed and the next comes (Unix milliseconds,\nthe worker's clock; 0 when not known).",
    )
    failed_at_ms: int = 0
    next_try_at_ms: int = 0


class StepExecutionCompleted(_base.ContractModel):
    """The agent finished the step; its changes are committed on the protocol branch. The step needs QA."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepExecutionCompleted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_execution_completed"

    step_run_id: str = ""
    attempt: int = 0
    summary: str = ""
    changed_files: tuple[str, ...] = ()
    commit_sha: str = ""
    prompt_version: str = ""
    engine_id: str = ""
    model: str = ""
    directive: _deksdenflow_common_v1_common.AgentDirective | None = _pydantic.Field(
        default=None,
        description="What the agent asked of the run (validated against its schema), if it said anything.",
    )


class StepExecutionFailed(_base.ContractModel):
    """Execution failed for good (retries exhausted or a permanent error)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepExecutionFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_execution_failed"

    step_run_id: str = ""
    attempt: int = 0
    reason: str = ""


class QaRequested(_base.ContractModel):
    """QA of a step was requested."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.QaRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.qa_requested"

    step_run_id: str = ""
    qa_attempt: int = _pydantic.Field(
        default=0, description="1 for the first QA of the step, +1 for each further QA."
    )
    policy: _typing.Annotated[
        _deksdenflow_common_v1_common.QaPolicy, _base.open_enum_field(_deksdenflow_common_v1_common.QaPolicy)
    ] = _deksdenflow_common_v1_common.QaPolicy.UNSPECIFIED
    reason: _typing.Annotated[
        _deksdenflow_common_v1_common.QaReason, _base.open_enum_field(_deksdenflow_common_v1_common.QaReason)
    ] = _deksdenflow_common_v1_common.QaReason.UNSPECIFIED


class QaVerdictRecorded(_base.ContractModel):
    """A structured QA verdict was recorded (fail-closed: anything but PASS is FAIL)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.QaVerdictRecorded"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.qa_verdict_recorded"

    step_run_id: str = ""
    qa_attempt: int = 0
    verdict: _typing.Annotated[
        _deksdenflow_common_v1_common.QaVerdict,
        _base.open_enum_field(_deksdenflow_common_v1_common.QaVerdict),
    ] = _deksdenflow_common_v1_common.QaVerdict.UNSPECIFIED
    summary: str = ""
    blocking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    next_actions: tuple[str, ...] = ()
    report_path: str = _pydantic.Field(
        default="", description="Where the quality report for this step and attempt was written."
    )
    prompt_version: str = ""
    engine_id: str = ""
    model: str = ""


class StepCompleted(_base.ContractModel):
    """A step completed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepCompleted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_completed"

    step_run_id: str = ""
    via: _typing.Annotated[
        _deksdenflow_common_v1_common.CompletionVia,
        _base.open_enum_field(_deksdenflow_common_v1_common.CompletionVia),
    ] = _deksdenflow_common_v1_common.CompletionVia.UNSPECIFIED


class StepFailed(_base.ContractModel):
    """A step failed (execution failed for good, QA FAIL, or CI failure)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_failed"

    step_run_id: str = ""
    source: _typing.Annotated[
        _deksdenflow_common_v1_common.FailureSource,
        _base.open_enum_field(_deksdenflow_common_v1_common.FailureSource),
    ] = _deksdenflow_common_v1_common.FailureSource.UNSPECIFIED
    reason: str = ""


class StepBlocked(_base.ContractModel):
    """A step was blocked (e.g. a strict budget would be exceeded); the run is blocked with it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.StepBlocked"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.step_blocked"

    step_run_id: str = ""
    reason: str = ""


class BranchPushed(_base.ContractModel):
    """The protocol branch was pushed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.BranchPushed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.branch_pushed"

    branch: str = ""
    commit_sha: str = ""
    ancestors: tuple[str, ...] = _pydantic.Field(
        default=(),
        description="The pushed commit's first-parent ancestors, nearest first (at most 16; empty in logs written before\nit was recorded). Steps of a parallel group push one after another, each onto the others' commits,\nbut their results may reach the log in another order: a push whose commit a recorded push named\n(as its commit or an ancestor) is an earlier one, recorded late, and leaves the branch head where it is.",
    )


class BranchRestored(_base.ContractModel):
    """A worker found the protocol branch deleted or rewritten on the remote (its tip no longer contains
    the last head the log recorded) and pushed that head back, without forcing, before working on it.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.BranchRestored"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.branch_restored"

    branch: str = ""
    commit_sha: str = _pydantic.Field(
        default="", description="The head pushed back: the last one the log recorded."
    )
    found_sha: str = _pydantic.Field(
        default="", description="What the remote branch pointed at instead; empty when the branch was gone."
    )


class BranchDeletionRequested(_base.ContractModel):
    """Deleting the protocol branch (local and remote) was requested from the git/CI worker."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.BranchDeletionRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.branch_deletion_requested"

    branch: str = ""


class BranchDeleted(_base.ContractModel):
    """A draft PR/MR was requested from the git/CI worker.
    The git worker deleted the protocol branch on the remote (existed=false: it was already gone).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.BranchDeleted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.branch_deleted"

    branch: str = ""
    existed: bool = False


class PullRequestRequested(_base.ContractModel):
    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_requested"

    attempt: int = 0


class PullRequestOpened(_base.ContractModel):
    """A draft PR/MR exists for the protocol branch (opened now, or an existing one reused)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestOpened"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_opened"

    attempt: int = 0
    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    number: int = 0
    url: str = ""
    reused: bool = False


class PullRequestFailed(_base.ContractModel):
    """Opening the PR/MR failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_failed"

    attempt: int = 0
    reason: str = ""


class PullRequestMerged(_base.ContractModel):
    """The PR/MR was merged; the run completes."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestMerged"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_merged"

    number: int = 0
    url: str = ""
    merge_commit_sha: str = ""


class PullRequestClosed(_base.ContractModel):
    """The PR/MR was closed without merging."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestClosed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_closed"

    number: int = 0
    url: str = ""


class CiReported(_base.ContractModel):
    """CI reported a result for a commit of the protocol branch."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.CiReported"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.ci_reported"

    step_run_id: str = _pydantic.Field(
        default="", description="The step whose commit CI ran (matched by head SHA); empty if none matched."
    )
    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    status: _typing.Annotated[
        _deksdenflow_common_v1_common.CiStatus, _base.open_enum_field(_deksdenflow_common_v1_common.CiStatus)
    ] = _deksdenflow_common_v1_common.CiStatus.UNSPECIFIED
    raw_status: str = _pydantic.Field(default="", description='The provider\'s own state, e.g. "timed_out".')
    head_sha: str = ""
    run_url: str = ""
    delivery_id: str = _pydantic.Field(
        default="",
        description="Provider delivery id (X-GitHub-Delivery, GitLab webhook UUID), for dedup and audit.",
    )
    ci_run: _deksdenflow_common_v1_common.CiRunRef | None = _pydantic.Field(
        default=None,
        description="The CI run reported on (check, id, attempt, time); unset for a report about the whole commit.",
    )
    stale: bool = _pydantic.Field(
        default=False,
        description="The report is older than what this CI run already reported (it arrived late or twice): it moves\nnothing and is not remembered as the check's latest result.",
    )
    held_by: str = _pydantic.Field(
        default="",
        description="The check whose failure on this commit still stands: this report (a success or a start of another\ncheck) does not clear it and moves no step.",
    )
    commit_status: _typing.Annotated[
        _deksdenflow_common_v1_common.CiStatus, _base.open_enum_field(_deksdenflow_common_v1_common.CiStatus)
    ] = _pydantic.Field(
        default=_deksdenflow_common_v1_common.CiStatus.UNSPECIFIED,
        description="The commit's combined CI state when the forge was asked for it; then it, not status, moves the step.",
    )


class CiFixRequested(_base.ContractModel):
    """CI failed on a step's commit and the project allows the agent to fix it: the git worker fetches the
    failing job's log, then the fix is requested (step_execution_requested, reason CI_FIX).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.CiFixRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.ci_fix_requested"

    step_run_id: str = ""
    fix_attempt: int = _pydantic.Field(default=0, description="1 for the first fix of this step.")
    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    head_sha: str = ""
    run_url: str = ""
    raw_status: str = ""


class UsageRecorded(_base.ContractModel):
    """Real token usage of one agent call."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.UsageRecorded"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.usage_recorded"

    call_id: str = _pydantic.Field(
        default="", description="Unique per agent call: the same call is never counted twice."
    )
    step_run_id: str = _pydantic.Field(default="", description="Empty for run-level calls (planning).")
    phase: _typing.Annotated[
        _deksdenflow_common_v1_common.Phase, _base.open_enum_field(_deksdenflow_common_v1_common.Phase)
    ] = _deksdenflow_common_v1_common.Phase.UNSPECIFIED
    engine_id: str = ""
    model: str = ""
    usage: _deksdenflow_common_v1_common.TokenUsage | None = None
    cost_micro_usd: int = _pydantic.Field(
        default=0, description="Cost in millionths of a US dollar, from the configured price table."
    )
    prompt_name: str = _pydantic.Field(
        default="",
        description='The prompt behind the call: its name ("planning", "decompose", "exec", "qa", "qa-light") and version\n(the first 12 hex digits of its template\'s SHA-256; "" for calls recorded before prompts were).',
    )
    prompt_version: str = ""


class PlanApproved(_base.ContractModel):
    """A person approved the plan (plan_approval: required); steps may run."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanApproved"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.plan_approved"

    attempt: int = _pydantic.Field(default=0, description="The planning attempt whose plan was approved.")


class PlanRejected(_base.ContractModel):
    """A person rejected the plan; it is planned again with the reason (a planning_requested follows)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PlanRejected"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.plan_rejected"

    attempt: int = 0
    reason: str = ""


class PullRequestReadyRequested(_base.ContractModel):
    """Mark the draft PR/MR ready for review (and ask its reviewers), every step being completed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestReadyRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_ready_requested"

    attempt: int = 0
    reviewers: tuple[str, ...] = ()


class PullRequestMarkedReady(_base.ContractModel):
    """The PR/MR is ready for review."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestMarkedReady"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_marked_ready"

    attempt: int = 0
    reviewers_requested: tuple[str, ...] = ()


class PullRequestReadyFailed(_base.ContractModel):
    """Marking the PR/MR ready failed for good (the run goes on; a person can do it on the forge)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.PullRequestReadyFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.pr_ready_failed"

    attempt: int = 0
    reason: str = ""


class MergeRequested(_base.ContractModel):
    """Merge the PR/MR (merge: when_green): every step passed QA and CI is green on head_sha."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.MergeRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.merge_requested"

    attempt: int = 0
    head_sha: str = _pydantic.Field(
        default="",
        description="The commit CI was green on; the forge refuses the merge if the branch moved since.",
    )
    method: _typing.Annotated[
        _deksdenflow_common_v1_common.MergeMethod,
        _base.open_enum_field(_deksdenflow_common_v1_common.MergeMethod),
    ] = _deksdenflow_common_v1_common.MergeMethod.UNSPECIFIED


class MergeScheduled(_base.ContractModel):
    """The forge will merge once its pipeline succeeds (GitLab "merge when pipeline succeeds")."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.MergeScheduled"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.merge_scheduled"

    attempt: int = 0


class MergeFailed(_base.ContractModel):
    """The forge refused the merge; the run is blocked until a person merges, retries or cancels."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.MergeFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.merge_failed"

    attempt: int = 0
    reason: str = ""


class ReviewRecorded(_base.ContractModel):
    """A review of the run's PR/MR (approval, changes requested, comments, a dismissal)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ReviewRecorded"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.review_recorded"

    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = None
    step_run_id: str = _pydantic.Field(
        default="",
        description="The step the review concerns (its commit, else the last step that pushed one); empty if none.",
    )
    delivery_id: str = _pydantic.Field(default="", description="Webhook delivery id, for dedup and audit.")


class ReviewFixRequested(_base.ContractModel):
    """The step is to be fixed for a review; the fix runs once nothing else of the run is in flight."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ReviewFixRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.review_fix_requested"

    step_run_id: str = ""
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = None


class ReviewReplyRequested(_base.ContractModel):
    """Reply on the PR/MR to a review whose fix is done: what was changed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ReviewReplyRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.review_reply_requested"

    step_run_id: str = ""
    review_id: str = ""
    reviewer: str = ""
    body: str = ""


class ReviewReplied(_base.ContractModel):
    """The reply was posted."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ReviewReplied"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.review_replied"

    review_id: str = ""
    url: str = ""


class ProtocolRunQueued(_base.ContractModel):
    """The run was started while run limits are set: it waits for a slot, in the order runs were queued."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunQueued"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.queued"


class ProtocolRunAdmitted(_base.ContractModel):
    """A slot was free: the run goes on (planning is requested in the same decision)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProtocolRunAdmitted"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.admitted"

    active_in_project: int = _pydantic.Field(
        default=0,
        description="Runs active when it was admitted, in its project and in all (itself not counted).",
    )
    active_total: int = 0


class JobRetryScheduled(_base.ContractModel):
    """A job on the run failed and will be tried again (the reads show why and when)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.JobRetryScheduled"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.job_retry_scheduled"

    retry: _deksdenflow_common_v1_common.JobRetry | None = None


class EngineFallbackTaken(_base.ContractModel):
    """An agent call switched to the next engine and model of its phase's fallback chain, on a classified
    error of the one it used (the one it left cools down for a while).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.EngineFallbackTaken"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.engine_fallback_taken"

    step_run_id: str = ""
    phase: _typing.Annotated[
        _deksdenflow_common_v1_common.Phase, _base.open_enum_field(_deksdenflow_common_v1_common.Phase)
    ] = _deksdenflow_common_v1_common.Phase.UNSPECIFIED
    from_engine: str = ""
    from_model: str = ""
    to_engine: str = ""
    to_model: str = ""
    reason: str = _pydantic.Field(
        default="", description="rate_limit, usage_limit, context_window, provider_error, timeout"
    )
    error: str = ""
    cooldown_until_ms: int = 0


class GuardrailViolated(_base.ContractModel):
    """The guardrails found problems in an execution's change, before it was committed: the agent is asked
    again with them (asked_again), or the step fails with them.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.GuardrailViolated"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.guardrail_violated"

    step_run_id: str = ""
    attempt: int = 0
    reask: int = 0
    findings: tuple[_deksdenflow_common_v1_common.GuardrailFinding, ...] = ()
    asked_again: bool = False


class BudgetWarningRecorded(_base.ContractModel):
    """What was spent crossed a configurable share (DEKSDENFLOW_BUDGET_WARN_SHARE) of a budget: a warning
    before the budget stops anything. Once per run, budget scope and kind (the same project budget may warn
    on each of its runs).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.BudgetWarningRecorded"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.budget_warning_recorded"

    scope: str = _pydantic.Field(default="", description='"step", "protocol" or "project".')
    kind: str = _pydantic.Field(default="", description='"tokens" or "cost".')
    step_run_id: str = _pydantic.Field(
        default="",
        description="The step whose calls crossed it (empty for a protocol or project budget crossed outside a step).",
    )
    share: float = _pydantic.Field(default=0.0, description="The share crossed, e.g. 0.8.")
    spent: int = _pydantic.Field(
        default=0, description="What is spent and the limit: tokens, or millionths of a US dollar."
    )
    limit: int = 0


class LoopTaken(_base.ContractModel):
    """A failure (or the agent's loop directive) sent the run back: the steps from back_to to this one are
    pending again (steps a trigger queued among them are cancelled: their parents queue them anew).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.LoopTaken"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.loop_taken"

    step_run_id: str = _pydantic.Field(default="", description="The step whose loop policy was taken.")
    back_to: str = _pydantic.Field(
        default="", description="The step file name the run goes back to, and its step."
    )
    back_to_step_run_id: str = ""
    cause: _typing.Annotated[
        _deksdenflow_common_v1_common.LoopCause,
        _base.open_enum_field(_deksdenflow_common_v1_common.LoopCause),
    ] = _deksdenflow_common_v1_common.LoopCause.UNSPECIFIED
    iteration: int = _pydantic.Field(
        default=0, description="1 for the first time this loop is taken, up to max_iterations."
    )
    max_iterations: int = 0
    reason: str = ""
    reset_step_run_ids: tuple[str, ...] = _pydantic.Field(
        default=(), description="Steps set pending again (executed anew, each as its next attempt)."
    )
    skipped_step_run_ids: tuple[str, ...] = _pydantic.Field(
        default=(), description="Steps the policy skips (left as they are)."
    )
    superseded_step_run_ids: tuple[str, ...] = _pydantic.Field(
        default=(), description="Steps a trigger had queued in that range: cancelled."
    )


class LoopSpent(_base.ContractModel):
    """A failure met a loop policy with no iteration left: the failure stands (the run is blocked)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.LoopSpent"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.loop_spent"

    step_run_id: str = ""
    cause: _typing.Annotated[
        _deksdenflow_common_v1_common.LoopCause,
        _base.open_enum_field(_deksdenflow_common_v1_common.LoopCause),
    ] = _deksdenflow_common_v1_common.LoopCause.UNSPECIFIED
    iterations: int = 0
    max_iterations: int = 0
    reason: str = ""


class TriggerQueued(_base.ContractModel):
    """A step's trigger queued another agent's step right after it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.TriggerQueued"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.trigger_queued"

    from_step_run_id: str = ""
    step: _deksdenflow_common_v1_common.StepPlan | None = _pydantic.Field(
        default=None,
        description="The queued step (its id assigned here; a new index after the plan's; its file written when it runs).",
    )
    agent: str = ""
    prompt: str = _pydantic.Field(
        default="", description="The queued step's file content: what the agent is asked."
    )
    depth: int = _pydantic.Field(
        default=0,
        description="How deep in a chain of triggers the queued step is (1: queued by a planned step).",
    )
    max_depth: int = 0
    on_directive: bool = _pydantic.Field(
        default=False, description='Queued because the agent\'s directive said "trigger".'
    )


class TriggerRefused(_base.ContractModel):
    """A trigger was not taken (the chain is as deep as allowed, or nothing names the agent)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.TriggerRefused"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.trigger_refused"

    from_step_run_id: str = ""
    agent: str = ""
    depth: int = 0
    max_depth: int = 0
    reason: str = ""


class CheckpointReached(_base.ContractModel):
    """The run stopped after a step for a person's decision (continue, or cancel); it is blocked until then."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.CheckpointReached"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.checkpoint_reached"

    step_run_id: str = ""
    reason: str = ""
    directive: _typing.Annotated[
        _deksdenflow_common_v1_common.DirectiveAction,
        _base.open_enum_field(_deksdenflow_common_v1_common.DirectiveAction),
    ] = _pydantic.Field(
        default=_deksdenflow_common_v1_common.DirectiveAction.UNSPECIFIED,
        description='Stopped because the agent\'s directive said so ("checkpoint" or "stop").',
    )


class CheckpointPassed(_base.ContractModel):
    """A person let the run go on from a checkpoint."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.CheckpointPassed"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.checkpoint_passed"

    step_run_id: str = ""
    reason: str = _pydantic.Field(default="", description="What the person said, if anything.")


class DirectiveRejected(_base.ContractModel):
    """The agent left a directive that does not match its schema: it was not taken (the step goes on as if
    the agent had said nothing).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.DirectiveRejected"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.directive_rejected"

    step_run_id: str = ""
    attempt: int = 0
    error: str = ""


class SpecAudited(_base.ContractModel):
    """The run's stored plan checked again against the spec rules of `rules_version` (an audit, after the
    rules changed): the problems it has under them. Recorded only when they differ from the last audit's
    (an empty list: the problems cleared). While a planned run has problems it may not leave planned: it
    is planned again (start, reject_plan) or waits for them to clear.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.SpecAudited"
    EVENT_TYPE: _typing.ClassVar[str] = "protocol_run.spec_audited"

    rules_version: int = 0
    problems: tuple[str, ...] = ()
    spec_hash: str = _pydantic.Field(default="", description="The hash of the plan that was checked.")

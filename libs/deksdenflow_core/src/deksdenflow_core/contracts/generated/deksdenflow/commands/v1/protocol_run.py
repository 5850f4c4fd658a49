# Generated from deksdenflow/commands/v1/protocol_run.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/commands/v1/protocol_run.proto (proto package deksdenflow.commands.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class CreateProtocolRun(_base.ContractModel):
    """Open a protocol for a task. The system assigns the number and the name "NNNN-slug"."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.CreateProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.create"

    task_name: str = ""
    description: str = ""
    base_branch: str = _pydantic.Field(default="", description="Defaults to the project's base branch.")
    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = _pydantic.Field(
        default=None,
        description="Overrides of the project's run policy for this protocol (unset fields keep the project's).",
    )
    imported: _deksdenflow_common_v1_common.ImportedPlan | None = _pydantic.Field(
        default=None,
        description="A plan imported from a spec written elsewhere: planning writes it instead of asking an agent.",
    )


class StartProtocolRun(_base.ContractModel):
    """Start (or re-plan) the protocol: pending, planned or paused-before-planning -> planning."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.StartProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.start"

    queue: bool = _pydantic.Field(
        default=False,
        description="Run limits are set: the run waits in queued until the admission admits it.",
    )


class PauseProtocolRun(_base.ContractModel):
    """Pause a run that is not finished."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.PauseProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.pause"


class ResumeProtocolRun(_base.ContractModel):
    """Resume a paused run."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.ResumeProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.resume"


class CancelProtocolRun(_base.ContractModel):
    """Cancel a run that is not finished; its open steps are cancelled with it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.CancelProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.cancel"

    reason: str = ""


class ContinueProtocolRun(_base.ContractModel):
    """Let a run stopped at a checkpoint go on."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.ContinueProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.continue"

    reason: str = ""


class RunNextStep(_base.ContractModel):
    """Execute the next pending step."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RunNextStep"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.run_next_step"


class RetryLatestStep(_base.ContractModel):
    """Retry the most recent failed or blocked step."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RetryLatestStep"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.retry_latest"


class OpenPullRequest(_base.ContractModel):
    """Push the branch and open a draft PR/MR now."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.OpenPullRequest"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.open_pr"


class RequestBranchDeletion(_base.ContractModel):
    """Delete the protocol's branch; only once the run has ended."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RequestBranchDeletion"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.request_branch_deletion"


class RunStep(_base.ContractModel):
    """Execute one step (pending), or retry it (failed or blocked)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RunStep"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.run_step"

    step_run_id: str = ""


class RunStepQa(_base.ContractModel):
    """Run QA for a step that needs it (or re-run it after a FAIL)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RunStepQa"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.run_step_qa"

    step_run_id: str = ""


class ApproveStep(_base.ContractModel):
    """Approve a step by hand (needs_qa, failed or blocked -> completed)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.ApproveStep"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.approve_step"

    step_run_id: str = ""


class RecordPlanningStarted(_base.ContractModel):
    """A worker took the planning job."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPlanningStarted"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_planning_started"

    attempt: int = 0
    worker_id: str = ""


class RecordPlanningCompleted(_base.ContractModel):
    """The agent produced a plan. It is validated; an invalid plan becomes planning_failed, never planned."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPlanningCompleted"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_planning_completed"

    attempt: int = 0
    steps: tuple[_deksdenflow_common_v1_common.StepPlan, ...] = _pydantic.Field(
        default=(), description="step_run_id is left empty: the system assigns ids."
    )
    commit_sha: str = ""
    prompt_version: str = ""
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


class RecordPlanningFailed(_base.ContractModel):
    """Planning failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPlanningFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_planning_failed"

    attempt: int = 0
    reason: str = ""


class RecordStepExecutionStarted(_base.ContractModel):
    """A worker took a step's execution."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordStepExecutionStarted"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_step_execution_started"

    step_run_id: str = ""
    attempt: int = 0
    worker_id: str = ""


class RecordStepAttemptFailed(_base.ContractModel):
    """One try failed and the worker will retry; the step does not fail."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordStepAttemptFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_step_attempt_failed"

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


class RecordStepExecutionCompleted(_base.ContractModel):
    """The agent finished a step."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordStepExecutionCompleted"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_step_execution_completed"

    step_run_id: str = ""
    attempt: int = 0
    summary: str = ""
    changed_files: tuple[str, ...] = ()
    commit_sha: str = ""
    prompt_version: str = ""
    engine_id: str = ""
    model: str = ""
    auto_qa: bool = _pydantic.Field(
        default=False,
        description="When true (DEKSDENFLOW_AUTO_QA_AFTER_EXEC), QA is requested in the same decision.",
    )
    directive: _deksdenflow_common_v1_common.AgentDirective | None = _pydantic.Field(
        default=None, description="The agent's directive, validated against its schema by the worker."
    )
    directive_error: str = _pydantic.Field(
        default="",
        description="Why the directive the agent left was rejected (it did not match the schema); empty otherwise.",
    )


class RecordStepExecutionFailed(_base.ContractModel):
    """Execution failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordStepExecutionFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_step_execution_failed"

    step_run_id: str = ""
    attempt: int = 0
    reason: str = ""


class RecordStepBlocked(_base.ContractModel):
    """Block a step that cannot go on without a person (e.g. a strict budget would be exceeded)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordStepBlocked"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_step_blocked"

    step_run_id: str = ""
    reason: str = ""


class RecordQaVerdict(_base.ContractModel):
    """A QA verdict for a step."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordQaVerdict"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_qa_verdict"

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
    report_path: str = ""
    prompt_version: str = ""
    engine_id: str = ""
    model: str = ""


class RecordBranchPushed(_base.ContractModel):
    """The branch was pushed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordBranchPushed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_branch_pushed"

    branch: str = ""
    commit_sha: str = ""
    ancestors: tuple[str, ...] = _pydantic.Field(
        default=(),
        description="The pushed commit's first-parent ancestors, nearest first (at most 16; empty in logs written before\nit was recorded). Steps of a parallel group push one after another, each onto the others' commits,\nbut their results may reach the log in another order: a push whose commit a recorded push named\n(as its commit or an ancestor) is an earlier one, recorded late, and leaves the branch head where it is.",
    )


class RecordBranchRestored(_base.ContractModel):
    """The branch was found deleted or rewritten on the remote and its recorded head pushed back."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordBranchRestored"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_branch_restored"

    branch: str = ""
    commit_sha: str = ""
    found_sha: str = ""


class RecordBranchDeleted(_base.ContractModel):
    """The branch was deleted on the remote."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordBranchDeleted"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_branch_deleted"

    branch: str = ""
    existed: bool = False


class RecordPullRequestOpened(_base.ContractModel):
    """A PR/MR exists for the branch."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestOpened"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_opened"

    attempt: int = 0
    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    number: int = 0
    url: str = ""
    reused: bool = False


class RecordPullRequestFailed(_base.ContractModel):
    """Opening the PR/MR failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_failed"

    attempt: int = 0
    reason: str = ""


class RecordPullRequestMerged(_base.ContractModel):
    """The PR/MR was merged."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestMerged"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_merged"

    number: int = 0
    url: str = ""
    merge_commit_sha: str = ""


class RecordPullRequestClosed(_base.ContractModel):
    """The PR/MR was closed unmerged."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestClosed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_closed"

    number: int = 0
    url: str = ""


class RecordCiReport(_base.ContractModel):
    """A CI result for a commit of the protocol branch."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordCiReport"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_ci_report"

    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    status: _typing.Annotated[
        _deksdenflow_common_v1_common.CiStatus, _base.open_enum_field(_deksdenflow_common_v1_common.CiStatus)
    ] = _deksdenflow_common_v1_common.CiStatus.UNSPECIFIED
    raw_status: str = ""
    head_sha: str = ""
    run_url: str = ""
    delivery_id: str = ""
    auto_qa: bool = _pydantic.Field(
        default=False,
        description="When true (DEKSDENFLOW_AUTO_QA_ON_CI), success requests QA instead of completing the step.",
    )
    fix_attempts: int = _pydantic.Field(
        default=0,
        description="CI fixes allowed per step (the project's CI policy); 0: a failure blocks the run at once.",
    )
    ci_run: _deksdenflow_common_v1_common.CiRunRef | None = _pydantic.Field(
        default=None,
        description="The CI run reported on; reports of one run are applied in the run's own order, whatever order they\narrive in. Unset: a report about the whole commit (e.g. the reconciler's), never out of order.",
    )
    commit_status: _typing.Annotated[
        _deksdenflow_common_v1_common.CiStatus, _base.open_enum_field(_deksdenflow_common_v1_common.CiStatus)
    ] = _pydantic.Field(
        default=_deksdenflow_common_v1_common.CiStatus.UNSPECIFIED,
        description="The commit's combined CI state when the forge was asked for it (UNSPECIFIED: not asked); it is what\nmoves the step, over what one check said.",
    )


class RequestCiFix(_base.ContractModel):
    """Request the CI fix a ci_fix_requested asked for, with the evidence the git worker gathered."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RequestCiFix"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.request_ci_fix"

    step_run_id: str = ""
    evidence: _deksdenflow_common_v1_common.CiFailureEvidence | None = None


class RequeueLostWork(_base.ContractModel):
    """The scheduler found a request no worker has or will get (its consumer is idle while the run still
    waits); ask for the work again.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RequeueLostWork"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.requeue_lost_work"

    reason: str = _pydantic.Field(default="", description="What the scheduler saw, for the audit trail.")


class RecordUsage(_base.ContractModel):
    """Token usage of one agent call."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordUsage"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_usage"

    call_id: str = ""
    step_run_id: str = ""
    phase: _typing.Annotated[
        _deksdenflow_common_v1_common.Phase, _base.open_enum_field(_deksdenflow_common_v1_common.Phase)
    ] = _deksdenflow_common_v1_common.Phase.UNSPECIFIED
    engine_id: str = ""
    model: str = ""
    usage: _deksdenflow_common_v1_common.TokenUsage | None = None
    cost_micro_usd: int = 0
    prompt_name: str = _pydantic.Field(
        default="",
        description='The prompt behind the call: its name ("planning", "decompose", "exec", "qa", "qa-light") and version\n(the first 12 hex digits of its template\'s SHA-256; "" for calls recorded before prompts were).',
    )
    prompt_version: str = ""


class ApprovePlan(_base.ContractModel):
    """Approve the plan of a run that waits for it (plan_approval: required)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.ApprovePlan"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.approve_plan"


class RejectPlan(_base.ContractModel):
    """Reject the plan of a planned run: it is planned again, the reason given to the planner."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RejectPlan"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.reject_plan"

    reason: str = ""


class RecordPullRequestMarkedReady(_base.ContractModel):
    """The PR/MR was marked ready for review."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestMarkedReady"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_marked_ready"

    attempt: int = 0
    reviewers_requested: tuple[str, ...] = ()


class RecordPullRequestReadyFailed(_base.ContractModel):
    """Marking the PR/MR ready failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordPullRequestReadyFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_pr_ready_failed"

    attempt: int = 0
    reason: str = ""


class RecordMergeScheduled(_base.ContractModel):
    """The forge accepted the merge for later (it merges when its pipeline succeeds)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordMergeScheduled"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_merge_scheduled"

    attempt: int = 0


class RecordMergeFailed(_base.ContractModel):
    """The forge refused the merge."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordMergeFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_merge_failed"

    attempt: int = 0
    reason: str = ""


class RecordReview(_base.ContractModel):
    """A review of the run's PR/MR, from a webhook (GitHub pull_request_review / _comment, GitLab notes and
    approvals).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordReview"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_review"

    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = None
    delivery_id: str = ""


class RecordReviewReplied(_base.ContractModel):
    """The reply to a review was posted on the PR/MR."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordReviewReplied"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_review_replied"

    review_id: str = ""
    url: str = ""


class AdmitProtocolRun(_base.ContractModel):
    """Admit a queued run: a slot is free under the run limits (the admission decides; its counts are kept
    for the audit trail).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.AdmitProtocolRun"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.admit"

    active_in_project: int = 0
    active_total: int = 0


class RecordJobRetry(_base.ContractModel):
    """Record that a job on the run failed and will be tried again."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordJobRetry"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_job_retry"

    retry: _deksdenflow_common_v1_common.JobRetry | None = None


class RecordEngineFallback(_base.ContractModel):
    """Record that an agent call switched to the next engine and model of its phase's fallback chain."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordEngineFallback"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_engine_fallback"

    step_run_id: str = ""
    phase: _typing.Annotated[
        _deksdenflow_common_v1_common.Phase, _base.open_enum_field(_deksdenflow_common_v1_common.Phase)
    ] = _deksdenflow_common_v1_common.Phase.UNSPECIFIED
    from_engine: str = ""
    from_model: str = ""
    to_engine: str = ""
    to_model: str = ""
    reason: str = _pydantic.Field(
        default="",
        description="The classified error: rate_limit, usage_limit, context_window, provider_error, timeout.",
    )
    error: str = ""
    cooldown_until_ms: int = _pydantic.Field(
        default=0,
        description="Until when the engine and model it left are skipped by this worker (Unix milliseconds).",
    )


class RecordGuardrailViolations(_base.ContractModel):
    """Record what the guardrails found in an execution's change (before it was committed)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordGuardrailViolations"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_guardrail_violations"

    step_run_id: str = ""
    attempt: int = 0
    reask: int = _pydantic.Field(
        default=0, description="0 for the agent's first answer, 1 for the first time it was asked again, ..."
    )
    findings: tuple[_deksdenflow_common_v1_common.GuardrailFinding, ...] = ()
    asked_again: bool = _pydantic.Field(
        default=False,
        description="The agent is asked again with the findings (true), or the step fails with them (false).",
    )


class RecordBudgetWarning(_base.ContractModel):
    """Record that spending crossed the warning share of a budget (recorded once per run, scope and kind)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordBudgetWarning"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.record_budget_warning"

    scope: str = ""
    kind: str = ""
    step_run_id: str = ""
    share: float = 0.0
    spent: int = 0
    limit: int = 0


class AuditSpec(_base.ContractModel):
    """Check the run's stored plan against the spec rules of today (an audit); the domain records what it
    finds when that differs from the last audit of the run.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.AuditSpec"
    COMMAND_TYPE: _typing.ClassVar[str] = "protocol_run.audit_spec"

# Generated from deksdenflow/common/v1/common.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/common/v1/common.proto (proto package deksdenflow.common.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base


class StepType(_base.OpenEnum):
    """What a step is for. Step 0 of a plan is the setup step; the last one finalizes."""

    UNSPECIFIED = "STEP_TYPE_UNSPECIFIED"
    SETUP = "STEP_TYPE_SETUP"
    WORK = "STEP_TYPE_WORK"
    QA = "STEP_TYPE_QA"


class QaPolicy(_base.OpenEnum):
    """How much QA a step gets after execution.

    UNSPECIFIED: Unset: treated as full.
    SKIP: No QA: the step completes when its execution completes.
    LIGHT: A cheaper QA pass (cheaper model, diff-only context).
    FULL: The full validator prompt with the whole protocol context.
    """

    UNSPECIFIED = "QA_POLICY_UNSPECIFIED"
    SKIP = "QA_POLICY_SKIP"
    LIGHT = "QA_POLICY_LIGHT"
    FULL = "QA_POLICY_FULL"


class QaVerdict(_base.OpenEnum):
    """A QA verdict. Fail-closed: anything but PASS is FAIL."""

    UNSPECIFIED = "QA_VERDICT_UNSPECIFIED"
    PASS = "QA_VERDICT_PASS"
    FAIL = "QA_VERDICT_FAIL"


class CiProvider(_base.OpenEnum):
    """The code host and CI of a project."""

    UNSPECIFIED = "CI_PROVIDER_UNSPECIFIED"
    GITHUB = "CI_PROVIDER_GITHUB"
    GITLAB = "CI_PROVIDER_GITLAB"


class CiStatus(_base.OpenEnum):
    """A CI result, normalised from the provider's own states.

    RUNNING: in_progress, queued, pending, running.
    SUCCESS: success, neutral, passed.
    FAILURE: failure, failed, timed_out, cancelled, canceled, error, action_required.
    """

    UNSPECIFIED = "CI_STATUS_UNSPECIFIED"
    RUNNING = "CI_STATUS_RUNNING"
    SUCCESS = "CI_STATUS_SUCCESS"
    FAILURE = "CI_STATUS_FAILURE"


class Phase(_base.OpenEnum):
    """The agent phase a call belongs to (prompt, model and usage are tracked per phase)."""

    UNSPECIFIED = "PHASE_UNSPECIFIED"
    PLANNING = "PHASE_PLANNING"
    DECOMPOSE = "PHASE_DECOMPOSE"
    EXEC = "PHASE_EXEC"
    QA = "PHASE_QA"
    DISCOVERY = "PHASE_DISCOVERY"


class ExecutionReason(_base.OpenEnum):
    """Why a step's execution was requested.

    RUN_NEXT_STEP: The run's "run next step" action picked the next pending step.
    RUN: The step's own "run" action.
    RETRY: A retry of a failed or blocked step (retries + 1).
    CI_FIX: A follow-up that fixes a CI failure.
    RESUME: The run was resumed after a pause interrupted this execution (the worker stopped the agent).
    REQUEUE: The scheduler found the request lost (no worker has it and none will get it) and asked again.
    AUTOPILOT: Autopilot: the previous piece of work finished (or the plan was accepted) and this step is next.
    REVIEW_FIX: A follow-up that addresses a PR/MR review (changes requested, review comments).
    """

    UNSPECIFIED = "EXECUTION_REASON_UNSPECIFIED"
    RUN_NEXT_STEP = "EXECUTION_REASON_RUN_NEXT_STEP"
    RUN = "EXECUTION_REASON_RUN"
    RETRY = "EXECUTION_REASON_RETRY"
    CI_FIX = "EXECUTION_REASON_CI_FIX"
    RESUME = "EXECUTION_REASON_RESUME"
    REQUEUE = "EXECUTION_REASON_REQUEUE"
    AUTOPILOT = "EXECUTION_REASON_AUTOPILOT"
    REVIEW_FIX = "EXECUTION_REASON_REVIEW_FIX"


class QaReason(_base.OpenEnum):
    """Why QA of a step was requested.

    AFTER_EXEC: DEKSDENFLOW_AUTO_QA_AFTER_EXEC: QA right after execution.
    MANUAL: The step's "run_qa" action.
    CI_SUCCESS: DEKSDENFLOW_AUTO_QA_ON_CI: QA when CI succeeded.
    RESUME: The run was resumed after a pause interrupted this QA.
    REQUEUE: The scheduler found the request lost and asked again.
    """

    UNSPECIFIED = "QA_REASON_UNSPECIFIED"
    AFTER_EXEC = "QA_REASON_AFTER_EXEC"
    MANUAL = "QA_REASON_MANUAL"
    CI_SUCCESS = "QA_REASON_CI_SUCCESS"
    RESUME = "QA_REASON_RESUME"
    REQUEUE = "QA_REASON_REQUEUE"


class CompletionVia(_base.OpenEnum):
    """How a step came to be completed."""

    UNSPECIFIED = "COMPLETION_VIA_UNSPECIFIED"
    QA_PASS = "COMPLETION_VIA_QA_PASS"
    MANUAL_APPROVE = "COMPLETION_VIA_MANUAL_APPROVE"
    QA_SKIPPED = "COMPLETION_VIA_QA_SKIPPED"
    CI_SUCCESS = "COMPLETION_VIA_CI_SUCCESS"


class FailureSource(_base.OpenEnum):
    """What made a step fail.

    REVIEW: A reviewer asked for changes on the PR/MR.
    """

    UNSPECIFIED = "FAILURE_SOURCE_UNSPECIFIED"
    EXECUTION = "FAILURE_SOURCE_EXECUTION"
    QA = "FAILURE_SOURCE_QA"
    CI = "FAILURE_SOURCE_CI"
    REVIEW = "FAILURE_SOURCE_REVIEW"


class RunCompletionReason(_base.OpenEnum):
    """Why a protocol run completed.

    ALL_STEPS_DONE: Every step is completed or cancelled.
    PR_MERGED: Its pull/merge request was merged.
    PR_CLOSED: Every step was done and its pull/merge request was closed without merging (autopilot runs, which
    end with their PR/MR).
    """

    UNSPECIFIED = "RUN_COMPLETION_REASON_UNSPECIFIED"
    ALL_STEPS_DONE = "RUN_COMPLETION_REASON_ALL_STEPS_DONE"
    PR_MERGED = "RUN_COMPLETION_REASON_PR_MERGED"
    PR_CLOSED = "RUN_COMPLETION_REASON_PR_CLOSED"


class LoopCause(_base.OpenEnum):
    """What takes a loop back.

    EXECUTION_FAILED: The step's execution failed.
    QA_FAILED: The step's QA verdict was FAIL.
    DIRECTIVE: The agent's structured directive said "loop".
    """

    UNSPECIFIED = "LOOP_CAUSE_UNSPECIFIED"
    EXECUTION_FAILED = "LOOP_CAUSE_EXECUTION_FAILED"
    QA_FAILED = "LOOP_CAUSE_QA_FAILED"
    DIRECTIVE = "LOOP_CAUSE_DIRECTIVE"


class DirectiveAction(_base.OpenEnum):
    """What an execution agent asks of the run once its step is done (CodeMachine's directive actions).

    LOOP: Go back as the step's loop policy says (counts as a loop with cause DIRECTIVE).
    CHECKPOINT: Stop after the step for a person's decision.
    CONTINUE: Go on as planned.
    TRIGGER: Queue another agent's step after this one.
    STOP: Stop the workflow after the step: the run waits for a person (continue or cancel).
    ERROR: The agent could not do the step: its execution failed.
    PAUSE: Pause the run once the step's execution is recorded.
    """

    UNSPECIFIED = "DIRECTIVE_ACTION_UNSPECIFIED"
    LOOP = "DIRECTIVE_ACTION_LOOP"
    CHECKPOINT = "DIRECTIVE_ACTION_CHECKPOINT"
    CONTINUE = "DIRECTIVE_ACTION_CONTINUE"
    TRIGGER = "DIRECTIVE_ACTION_TRIGGER"
    STOP = "DIRECTIVE_ACTION_STOP"
    ERROR = "DIRECTIVE_ACTION_ERROR"
    PAUSE = "DIRECTIVE_ACTION_PAUSE"


class WebhookOutcome(_base.OpenEnum):
    """What became of a webhook delivery.

    APPLIED: It changed the run (see the run's events caused by it).
    NO_EFFECT: The run took note; nothing changed (a duplicate result, a state already reached).
    REJECTED: The run refused it (e.g. the run was cancelled).
    IGNORED: Nothing to apply it to (unknown run, event not handled).
    """

    UNSPECIFIED = "WEBHOOK_OUTCOME_UNSPECIFIED"
    APPLIED = "WEBHOOK_OUTCOME_APPLIED"
    NO_EFFECT = "WEBHOOK_OUTCOME_NO_EFFECT"
    REJECTED = "WEBHOOK_OUTCOME_REJECTED"
    IGNORED = "WEBHOOK_OUTCOME_IGNORED"


class RunMode(_base.OpenEnum):
    """Who moves a protocol run forward.

    UNSPECIFIED: Unset: manual (runs recorded before run policies existed behave as they did).
    AUTOPILOT: The run advances by itself: each finished piece of work requests the next, under the policy.
    MANUAL: A client asks for every step, QA and the PR (the first version's behaviour).
    """

    UNSPECIFIED = "RUN_MODE_UNSPECIFIED"
    AUTOPILOT = "RUN_MODE_AUTOPILOT"
    MANUAL = "RUN_MODE_MANUAL"


class PlanApproval(_base.OpenEnum):
    """Whether a plan needs a person's approval before any step runs.

    UNSPECIFIED: Unset: auto.
    REQUIRED: The run waits in planned until approve_plan (or reject_plan, which plans again with the reason).
    """

    UNSPECIFIED = "PLAN_APPROVAL_UNSPECIFIED"
    AUTO = "PLAN_APPROVAL_AUTO"
    REQUIRED = "PLAN_APPROVAL_REQUIRED"


class PrOpening(_base.OpenEnum):
    """When an autopilot run opens its draft PR/MR.

    UNSPECIFIED: Unset: after the first pushed step.
    NEVER: Never by itself (open_pr still does).
    """

    UNSPECIFIED = "PR_OPENING_UNSPECIFIED"
    AFTER_FIRST_PUSH = "PR_OPENING_AFTER_FIRST_PUSH"
    WHEN_DONE = "PR_OPENING_WHEN_DONE"
    NEVER = "PR_OPENING_NEVER"


class MergeMode(_base.OpenEnum):
    """Whether an autopilot run merges its PR/MR.

    UNSPECIFIED: Unset: never.
    WHEN_GREEN: Once every step passed QA, CI is green on the head commit and every required check passed.
    """

    UNSPECIFIED = "MERGE_MODE_UNSPECIFIED"
    NEVER = "MERGE_MODE_NEVER"
    WHEN_GREEN = "MERGE_MODE_WHEN_GREEN"


class MergeMethod(_base.OpenEnum):
    """How the forge merges.

    UNSPECIFIED: Unset: merge.
    """

    UNSPECIFIED = "MERGE_METHOD_UNSPECIFIED"
    MERGE = "MERGE_METHOD_MERGE"
    SQUASH = "MERGE_METHOD_SQUASH"
    REBASE = "MERGE_METHOD_REBASE"


class ReviewState(_base.OpenEnum):
    """What a reviewer said on a PR/MR.

    COMMENTED: Comments without a verdict (GitHub COMMENTED, a GitLab note on the MR or its diff).
    DISMISSED: An earlier approval or request for changes no longer counts (dismissed, approval revoked).
    """

    UNSPECIFIED = "REVIEW_STATE_UNSPECIFIED"
    APPROVED = "REVIEW_STATE_APPROVED"
    CHANGES_REQUESTED = "REVIEW_STATE_CHANGES_REQUESTED"
    COMMENTED = "REVIEW_STATE_COMMENTED"
    DISMISSED = "REVIEW_STATE_DISMISSED"


class EngineDefaults(_base.ContractModel):
    """Default models per phase; empty means "use the setting".
    Engine per phase (e.g. "codex", "claude-code", "scripted"); empty means the worker's default.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.EngineDefaults"

    planning: str = ""
    decompose: str = ""
    exec: str = ""
    qa: str = ""
    discovery: str = ""


class ModelDefaults(_base.ContractModel):
    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ModelDefaults"

    planning: str = ""
    decompose: str = ""
    exec: str = ""
    qa: str = ""
    discovery: str = ""


class StepPlan(_base.ContractModel):
    """One step of a protocol's plan."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.StepPlan"

    step_run_id: str = _pydantic.Field(
        default="", description="Assigned by the system when the plan is accepted; empty in commands."
    )
    index: int = _pydantic.Field(default=0, description="0-based position; step 0 is the setup step.")
    name: str = _pydantic.Field(default="", description='The step file name, e.g. "01-build.md".')
    step_type: _typing.Annotated[StepType, _base.open_enum_field(StepType)] = StepType.UNSPECIFIED
    engine_id: str = _pydantic.Field(
        default="",
        description='Engine for execution (e.g. "codex"); empty means the project\'s or the global default.',
    )
    model: str = _pydantic.Field(
        default="", description="Model for execution; empty means the project's or the global default."
    )
    qa_policy: _typing.Annotated[QaPolicy, _base.open_enum_field(QaPolicy)] = QaPolicy.UNSPECIFIED
    qa_engine_id: str = ""
    qa_model: str = ""
    file_path: str = _pydantic.Field(
        default="", description="Path of the step file relative to the repository root."
    )
    policies: StepPolicies | None = _pydantic.Field(
        default=None,
        description="Loop, trigger and checkpoint policies (imported from a spec or written in one); unset: none.",
    )
    fallbacks: tuple[str, ...] = _pydantic.Field(
        default=(),
        description="This step's own fallback chain for execution (\"engine:model\", tried in order on classified errors);\nempty: the project's chain for the phase.",
    )
    labels: tuple[str, ...] = _pydantic.Field(
        default=(),
        description='Labels kept from the spec the step came from (e.g. spec-kit user stories "US1", a CodeMachine agent id).',
    )
    critical: bool = _pydantic.Field(
        default=False,
        description="A critical step's change is judged by a second QA reviewer too; it passes QA only when both say PASS.",
    )
    parallel_group: str = _pydantic.Field(
        default="",
        description="Steps of one group (consecutive in the plan) may execute at the same time when the run policy allows\n(RunPolicy.max_parallel_steps): each on the branch as it stands, its commit rebased onto the others'\nbefore it is pushed. Empty: the step runs alone.",
    )


class StepPolicies(_base.ContractModel):
    """What a step does beyond running once. Every decision a policy takes is an event of the run."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.StepPolicies"

    loop: StepLoopPolicy | None = None
    trigger: StepTriggerPolicy | None = None
    checkpoint: StepCheckpointPolicy | None = None


class StepLoopPolicy(_base.ContractModel):
    """Send the run back to an earlier step (or this one) instead of failing, a bounded number of times."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.StepLoopPolicy"

    back_to: str = _pydantic.Field(
        default="", description="The step file name the run goes back to: this step or an earlier one."
    )
    on: tuple[_typing.Annotated[LoopCause, _base.open_enum_field(LoopCause)], ...] = ()
    max_iterations: int = _pydantic.Field(
        default=0,
        description="How many times this loop may be taken in one run (>= 1); once spent, the failure stands.",
    )
    skip: tuple[str, ...] = _pydantic.Field(
        default=(),
        description="Step file names between back_to and this step that are not run again when the loop is taken.",
    )


class StepTriggerPolicy(_base.ContractModel):
    """Queue another agent's step after this one (when it completes, or only on the agent's "trigger"
    directive). A triggered step may trigger in turn, up to max_depth.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.StepTriggerPolicy"

    agent: str = _pydantic.Field(
        default="", description="The agent whose step is queued (e.g. a CodeMachine sub-agent id)."
    )
    prompt: str = _pydantic.Field(
        default="", description="What that step is asked to do (its step file's content)."
    )
    on_directive_only: bool = _pydantic.Field(
        default=False,
        description='Only when the agent\'s directive says "trigger" (otherwise: every time the step completes).',
    )
    max_depth: int = _pydantic.Field(
        default=0, description="How deep a chain of triggers may go (1..3; unset means 3)."
    )
    engine_id: str = _pydantic.Field(
        default="", description="Engine and model of the queued step; empty: the run's."
    )
    model: str = ""


class StepCheckpointPolicy(_base.ContractModel):
    """Stop for a person's decision after the step (always, or only on the agent's "checkpoint" directive)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.StepCheckpointPolicy"

    on_directive_only: bool = False
    reason: str = _pydantic.Field(default="", description="What the person is asked.")


class AgentDirective(_base.ContractModel):
    """An execution agent's directive, validated by the worker against agent-directive.schema.json before it
    is reported (an invalid one is never taken: the run records why it was rejected).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.AgentDirective"

    action: _typing.Annotated[DirectiveAction, _base.open_enum_field(DirectiveAction)] = (
        DirectiveAction.UNSPECIFIED
    )
    reason: str = ""
    agent: str = _pydantic.Field(
        default="",
        description="For a trigger: the agent whose step is queued, and what it is asked (empty: the step's trigger policy).",
    )
    prompt: str = ""


class TokenUsage(_base.ContractModel):
    """Token usage of one agent call, as reported by the engine."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.TokenUsage"

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0


class ClarificationQuestion(_base.ContractModel):
    """A question asked while onboarding a project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ClarificationQuestion"

    key: str = _pydantic.Field(default="", description='Stable key, e.g. "ci_provider".')
    question: str = ""
    options: tuple[str, ...] = _pydantic.Field(default=(), description="Suggested answers, if any.")
    blocking: bool = _pydantic.Field(
        default=False, description="When true the project is blocked until this question is answered."
    )


class CiFailureEvidence(_base.ContractModel):
    """What a CI fix is told about the failure it fixes: where CI ran, which job failed, the end of its log."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.CiFailureEvidence"

    head_sha: str = _pydantic.Field(default="", description="The commit CI failed on.")
    run_url: str = ""
    job_name: str = ""
    log_excerpt: str = _pydantic.Field(
        default="",
        description="The last lines of the failed job's log (may be empty when the forge would not give it).",
    )
    raw_status: str = _pydantic.Field(
        default="", description='The provider\'s word for the failure, e.g. "failure", "timed_out".'
    )
    fix_attempt: int = _pydantic.Field(
        default=0, description="1 for the first fix of this step, 2 for the second, ..."
    )
    note: str = _pydantic.Field(default="", description="Why the log is missing, if it is.")


class CiRunRef(_base.ContractModel):
    """Which CI run a report is about and how far along that run it was, so that reports arriving late or
    twice can be put back in order. Every field is what the forge's payload says; 0 or \"" when it says
    nothing.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.CiRunRef"

    check: str = _pydantic.Field(
        default="",
        description='The line of CI on the commit whose latest result counts, as "<event>:<name>": "workflow_run:CI",\n"check_run:test", "check_suite:GitHub Actions", "status:ci/jenkins", "pipeline:push".',
    )
    run_id: int = _pydantic.Field(
        default=0,
        description="The CI run's own id: GitHub workflow run, check run, check suite or status id; GitLab pipeline id.",
    )
    attempt: int = _pydantic.Field(
        default=0,
        description="GitHub's run_attempt (a re-run of the same workflow run counts up); 0 where the forge has none.",
    )
    updated_at_ms: int = _pydantic.Field(
        default=0,
        description="The latest time the payload gives for this run (updated, started, completed, finished, a job's\ncreation), in milliseconds since the epoch.",
    )


class CiPolicy(_base.ContractModel):
    """How a project reacts to CI."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.CiPolicy"

    auto_qa_on_success: bool = _pydantic.Field(
        default=False, description="CI success requests QA of the step instead of completing it."
    )
    fix_attempts: int = _pydantic.Field(
        default=0,
        description="CI fixes the agent may attempt per step when CI fails (0: none; the run is blocked at once).",
    )


class PrPolicy(_base.ContractModel):
    """The PR/MR part of a run policy."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.PrPolicy"

    open: _typing.Annotated[PrOpening, _base.open_enum_field(PrOpening)] = PrOpening.UNSPECIFIED
    ready_when_done: bool | None = _pydantic.Field(
        default=None, description="Mark the draft ready for review once every step is completed."
    )
    reviewers: tuple[str, ...] = _pydantic.Field(
        default=(), description="Forge logins asked to review when the PR is marked ready."
    )


class MergePolicy(_base.ContractModel):
    """The merge part of a run policy."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.MergePolicy"

    mode: _typing.Annotated[MergeMode, _base.open_enum_field(MergeMode)] = MergeMode.UNSPECIFIED
    method: _typing.Annotated[MergeMethod, _base.open_enum_field(MergeMethod)] = MergeMethod.UNSPECIFIED
    required_checks: tuple[str, ...] = _pydantic.Field(
        default=(),
        description='CI checks that must have passed on the head commit, matched by name ("test" matches\n"check_run:test" and "workflow_run:test"), case-insensitive.',
    )
    required_approvals: int | None = _pydantic.Field(
        default=None,
        description="Approvals the PR needs from reviewers (besides whatever the forge itself requires).",
    )


class RunPolicy(_base.ContractModel):
    """How a protocol run advances: set per project, overridable per protocol, and recorded (resolved) in
    protocol_run.created so that a replay decides the same way. In an override, an unset field (an
    UNSPECIFIED enum, an absent optional, an empty list) keeps the project's value.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.RunPolicy"

    mode: _typing.Annotated[RunMode, _base.open_enum_field(RunMode)] = RunMode.UNSPECIFIED
    plan_approval: _typing.Annotated[PlanApproval, _base.open_enum_field(PlanApproval)] = (
        PlanApproval.UNSPECIFIED
    )
    qa_after_execution: bool | None = _pydantic.Field(
        default=None,
        description="Manual mode: QA right after each execution. Autopilot always does it (a step's own qa_policy still\napplies: skip skips it).",
    )
    pr: PrPolicy | None = None
    merge: MergePolicy | None = None
    review_fix_attempts: int | None = _pydantic.Field(
        default=None,
        description="Autopilot: fixes the agent may attempt per step for PR/MR reviews (changes requested or review\ncomments); when spent, a review blocks the run. Unset: 2 on autopilot, 0 on manual.",
    )
    max_parallel_steps: int | None = _pydantic.Field(
        default=None,
        description="Autopilot: how many steps of one parallel group (StepPlan.parallel_group) may execute at once\n(1..8). Unset or 1: one step at a time. A spec import splits spec-kit's [P] tasks into parallel steps\nonly when this allows more than one.",
    )


class ReviewComment(_base.ContractModel):
    """One comment of a review, on a line of the diff or on the whole PR/MR."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ReviewComment"

    path: str = _pydantic.Field(
        default="", description="The file and line it is on; empty/0 for a comment on the whole PR/MR."
    )
    line: int = 0
    body: str = ""
    url: str = ""


class ReviewFeedback(_base.ContractModel):
    """A review as the agent that addresses it is told."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ReviewFeedback"

    review_id: str = _pydantic.Field(
        default="",
        description="The forge's id of the review (GitHub review id, GitLab note or approval id), as text.",
    )
    reviewer: str = ""
    state: _typing.Annotated[ReviewState, _base.open_enum_field(ReviewState)] = ReviewState.UNSPECIFIED
    body: str = _pydantic.Field(
        default="", description="The review's own text (may be empty when only line comments were made)."
    )
    comments: tuple[ReviewComment, ...] = ()
    commit_sha: str = _pydantic.Field(default="", description="The commit the reviewer looked at.")
    url: str = ""
    fix_attempt: int = _pydantic.Field(
        default=0, description="1 for the first review fix of this step, 2 for the second, ..."
    )


class JobRetry(_base.ContractModel):
    """A worker's job failed with an error that may pass (a host that did not answer, a broker restart, an
    engine's transient error) and will be tried again: what failed, why, and when the next try comes.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.JobRetry"

    job: str = _pydantic.Field(
        default="",
        description='The request the job answers: its event type (e.g. "project.onboarding_requested") and id.',
    )
    request_event_id: str = ""
    step_run_id: str = _pydantic.Field(
        default="", description='The step the request is for ("" for a run- or project-level job).'
    )
    delivery: int = _pydantic.Field(
        default=0,
        description="Which delivery of the request failed (1 = the first) and how many the worker makes in all.",
    )
    max_deliveries: int = 0
    error: str = _pydantic.Field(default="", description="The error, bounded and free of secrets.")
    failed_at_ms: int = _pydantic.Field(
        default=0,
        description="When it failed and when the request is delivered again (Unix milliseconds, the worker's clock).",
    )
    next_try_at_ms: int = 0


class FallbackChains(_base.ContractModel):
    """Fallback chains per phase: "engine:model" entries (or "engine" for its default model), tried in order
    after the phase's own engine and model when a call fails with a classified error — a rate limit, a
    usage or quota limit, the context window exceeded, a provider error (5xx) or a timeout — never on a QA
    FAIL or an output that does not validate.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.FallbackChains"

    planning: tuple[str, ...] = ()
    decompose: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()
    qa: tuple[str, ...] = ()
    discovery: tuple[str, ...] = ()


class GuardrailFinding(_base.ContractModel):
    """What a guardrail found in an execution's change: the rule (scope, protected_path, diff_size, secret,
    tests_weakened, empty_change), what it says, and where (paths and lines; never a secret's value).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.GuardrailFinding"

    rule: str = ""
    message: str = ""
    evidence: tuple[str, ...] = ()


class ImportedPlan(_base.ContractModel):
    """A plan written elsewhere (a spec-kit feature folder, an OpenSpec change), imported as a protocol's plan:
    planning writes these files instead of asking an agent.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ImportedPlan"

    source: str = _pydantic.Field(
        default="", description='What it was imported from, e.g. "speckit:specs/001-photo-albums".'
    )
    plan_md: str = ""
    context_md: str = ""
    steps: tuple[ImportedStepFile, ...] = ()


class ImportedStepFile(_base.ContractModel):
    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.ImportedStepFile"

    filename: str = ""
    content: str = ""
    labels: tuple[str, ...] = _pydantic.Field(
        default=(), description='e.g. the user stories of a spec-kit phase ("US1").'
    )
    policies: StepPolicies | None = _pydantic.Field(
        default=None, description="The step's policies as the spec gives them."
    )
    engine_id: str = _pydantic.Field(
        default="", description="The step's engine and model as the spec gives them; empty: the run's."
    )
    model: str = ""
    parallel_group: str = _pydantic.Field(default="", description="See StepPlan.parallel_group.")


StepPlan.model_rebuild()
StepPolicies.model_rebuild()
ImportedPlan.model_rebuild()

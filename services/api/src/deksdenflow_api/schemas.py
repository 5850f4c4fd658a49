"""Request and response bodies (``XCreate`` in, ``XPublic`` out). Statuses use the names users know."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from deksdenflow_core.domain.git_url import check_git_url
from deksdenflow_core.domain.naming import is_valid_branch_name
from deksdenflow_core.domain.provider import ProviderName
from deksdenflow_core.errors import InvalidCommand
from deksdenflow_core.specs.check import StepPlanIn
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _git_url(value: str) -> str:
    try:
        return check_git_url(value)
    except InvalidCommand as exc:  # the domain's own rule, reported as a field error of the body
        raise ValueError(exc.message) from None


def _branch(value: str) -> str:
    if not is_valid_branch_name(value):
        raise ValueError("not a valid git branch name")
    return value


Branch = Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,200}$"), AfterValidator(_branch)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """Text in deksdenflow never holds NUL or other C0 controls but tab and newlines."""
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("must not contain control characters (other than tab and newlines)")
        return value


class ModelDefaults(_In):
    """Default models per phase; unset means the global setting."""

    planning: str | None = Field(default=None, max_length=200)
    decompose: str | None = Field(default=None, max_length=200)
    exec: str | None = Field(default=None, max_length=200)
    qa: str | None = Field(default=None, max_length=200)
    discovery: str | None = Field(default=None, max_length=200)


EngineId = Literal["codex", "claude-code", "scripted"]


class EngineDefaults(_In):
    """Default engine per phase; unset means the worker's setting."""

    planning: EngineId | None = None
    decompose: EngineId | None = None
    exec: EngineId | None = None
    qa: EngineId | None = None
    discovery: EngineId | None = None


FallbackEntry = Annotated[
    str,
    Field(
        min_length=1,
        max_length=240,
        pattern=r"^[a-z][a-z0-9-]{0,39}(:[^\s:][^\s]{0,199})?$",
        description='"engine" or "engine:model", e.g. "claude-code:claude-sonnet-4-5"',
    ),
]
FallbackChain = Annotated[list[FallbackEntry], Field(default_factory=list, max_length=5)]


class FallbackChainsIn(_In):
    """Engines and models tried in order after a phase's own when a call fails with a rate limit, a
    usage limit, the context window exceeded, a provider error or a timeout (never on a QA FAIL or an
    invalid output); the one left cools down for a while. Empty: the worker's chain."""

    planning: FallbackChain
    decompose: FallbackChain
    exec: FallbackChain
    qa: FallbackChain
    discovery: FallbackChain


class CiPolicyIn(_In):
    """How the project reacts to CI."""

    auto_qa_on_success: bool = Field(
        default=False, description="CI success requests QA of the step instead of completing it."
    )
    fix_attempts: int = Field(
        default=0,
        ge=0,
        le=10,
        description="CI fixes the agent may attempt per step when CI fails: the failing job's log excerpt "
        "goes into its prompt. 0: a CI failure blocks the run at once.",
    )


Login = Annotated[str, Field(min_length=1, max_length=201, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]


class PrPolicyIn(_In):
    """When an autopilot run's draft PR/MR opens, when it is marked ready, who reviews it."""

    open: Literal["after_first_push", "when_done", "never"] | None = Field(
        default=None,
        description="Open the draft after the first pushed step (default), when every step is "
        "done, or never (open_pr still opens one).",
    )
    ready_when_done: bool | None = Field(
        default=None, description="Mark it ready for review once every step is completed (default true)."
    )
    reviewers: list[Login] | None = Field(
        default=None,
        max_length=15,
        description="Forge logins (or org/team) asked to review when it is ready.",
    )


class MergePolicyIn(_In):
    """Whether an autopilot run merges its PR/MR."""

    mode: Literal["never", "when_green"] | None = Field(
        default=None,
        description="never (default), or when_green: once every step passed QA, CI is green on the head "
        "commit and every required check passed (GitLab: merge when the pipeline succeeds).",
    )
    method: Literal["merge", "squash", "rebase"] | None = Field(default=None, description="default merge")
    required_checks: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=30,
        description='CI checks that must pass, by name ("test" matches '
        '"check_run:test"); default none beyond green CI.',
    )
    required_approvals: int | None = Field(default=None, ge=0, le=10, description="default 0")


class RunPolicyIn(_In):
    """How protocol runs advance. Unset fields take the defaults (on a project) or the project's values
    (on a protocol)."""

    mode: Literal["autopilot", "manual"] | None = Field(
        default=None,
        description="autopilot (default for new projects): each finished piece of work requests the next; "
        "manual: a client asks for every step, QA and the PR.",
    )
    plan_approval: Literal["auto", "required"] | None = Field(
        default=None, description="required: the run waits in planned until approve_plan (or reject_plan)."
    )
    qa_after_execution: bool | None = Field(
        default=None, description="Manual mode: QA right after each execution. Autopilot always does it."
    )
    pr: PrPolicyIn | None = None
    merge: MergePolicyIn | None = None
    review_fix_attempts: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Autopilot: fixes the agent may attempt per step for PR/MR reviews (changes requested, "
        "review comments), each with the reviewer's words; when spent, a review blocks the run. Default 2 "
        "on autopilot, 0 on manual.",
    )
    max_parallel_steps: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="Autopilot: how many steps of one parallel group (a spec-kit phase's [P] tasks, imported "
        "as steps) may execute at once, each in its own worktree, its commit rebased onto the others' "
        "before it is pushed. Default 1: one step at a time (a spec-kit phase is then one step).",
    )


class ProjectCreate(_In):
    """Register a git repository."""

    name: str = Field(min_length=1, max_length=200)
    git_url: Annotated[str, AfterValidator(_git_url)] = Field(
        min_length=1,
        max_length=2000,
        description="Clone URL or local path of the repository, without credentials (an SSH URL uses the "
        "git worker's SSH key; forge tokens are the git worker's settings).",
    )
    base_branch: Branch = "main"
    ci_provider: ProviderName | None = None
    default_models: ModelDefaults = Field(default_factory=ModelDefaults)
    default_engines: EngineDefaults = Field(default_factory=EngineDefaults)
    local_path: str | None = Field(default=None, max_length=4000)
    forge_repo: str | None = Field(
        default=None,
        max_length=400,
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$",
        description="The repository on GitHub/GitLab (owner/repo, group/sub/project) when git_url does not "
        "say it (a mirror, an SSH alias, a local path).",
    )
    ci_policy: CiPolicyIn | None = Field(
        default=None, description="How the project reacts to CI; unset: the git worker's settings decide."
    )
    fallbacks: FallbackChainsIn | None = Field(
        default=None, description="Fallback engines and models per phase (unset: the worker's)."
    )
    run_policy: RunPolicyIn | None = Field(
        default=None,
        description="How its protocols advance; unset: autopilot to a ready-for-review PR, no merge.",
    )
    onboard: bool = Field(
        default=True,
        description="Onboard right away: the git worker checks the remote, adds starter assets on the "
        "deksdenflow/onboarding branch, makes a working clone and asks clarification questions.",
    )


class RetryPublic(BaseModel):
    """A job that failed and will be tried again: what, why, which try, and when the next comes."""

    job: str = Field(description="The request the job answers (its event type).")
    step_run_id: str | None
    delivery: int = Field(description="Which delivery of the request failed (1 = the first).")
    max_deliveries: int = Field(description="How many deliveries the worker makes before it gives up.")
    error: str
    failed_at: datetime
    next_try_at: datetime


class ProjectPublic(BaseModel):
    id: str
    name: str
    git_url: str
    base_branch: str
    ci_provider: str | None
    default_models: dict[str, Any]
    default_engines: dict[str, Any]
    forge_repo: str | None
    ci_policy: dict[str, Any] | None = None
    fallbacks: dict[str, list[str]] | None = Field(
        default=None, description="Fallback engines and models per phase (null: the worker's)."
    )
    run_policy: dict[str, Any] = Field(description="How its protocols advance (the defaults filled in).")
    local_path: str | None
    status: str
    status_reason: str | None = Field(
        description="Why the project is in its status when that needs a person: the onboarding's failure, "
        "or the blocking questions left to answer."
    )
    last_error: str | None = Field(description="The latest error a job on the project met.")
    retry: RetryPublic | None = Field(
        description="A job on the project that failed and will be tried again (null: none)."
    )
    questions: list[dict[str, Any]]
    answers: dict[str, str]
    created_at: datetime
    updated_at: datetime


class ProjectCreated(ProjectPublic):
    """The new project, and its first project token: shown this once, never again."""

    project_token: str
    token_id: str
    event_sequence: int


class ProjectsPublic(BaseModel):
    data: list[ProjectPublic]
    count: int


class TokenCreate(_In):
    label: str = Field(default="", max_length=200)


class TokenCreated(BaseModel):
    """A new project token: shown this once, never again."""

    token_id: str
    project_token: str
    label: str
    event_sequence: int


class ProtocolCreate(_In):
    """Open a protocol for a task; the system numbers and names it ``NNNN-slug``."""

    task_name: str = Field(
        min_length=1, max_length=200, description="Short task name; the slug is made from it."
    )
    description: str = Field(default="", max_length=20000)
    base_branch: Branch | None = None
    run_policy: RunPolicyIn | None = Field(
        default=None, description="Overrides of the project's run policy for this protocol."
    )


SpecPath = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9._/-]+$")]
# A spec file's text exactly as read (not stripped): the problems name its lines.
SpecText = Annotated[str, StringConstraints(strip_whitespace=False, max_length=200_000)]


class ProtocolImport(_In):
    """A protocol whose plan was written elsewhere: a spec-kit feature folder or an OpenSpec change, its
    files as the client read them. Planning writes its steps instead of asking an agent."""

    kind: Literal["speckit", "openspec"]
    name: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$", description="001-feature or the change id"
    )
    files: dict[SpecPath, SpecText] = Field(
        max_length=200, description="The folder's Markdown files by path within it (tasks.md, spec.md, …)."
    )
    constitution: str = Field(default="", max_length=200_000, description="spec-kit's constitution.md")
    task_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: its title."
    )
    base_branch: Branch | None = None
    run_policy: RunPolicyIn | None = None


class CodeMachineImport(_In):
    """A protocol whose plan is a CodeMachine workflow: a package in today's format (``codemachine.json``,
    ``templates/workflows/*.workflow.js``, ``config/*.agents.js``, ``config/modules.js``, the prompts) or a
    first-version ``.codemachine`` workspace, its files as the client read them. The package's JavaScript is
    evaluated in a sandbox (Node.js: no file, network or process access, time-limited), never run as code."""

    files: dict[SpecPath, SpecText] = Field(
        max_length=500, description="The package's or workspace's files by path within it."
    )
    workflow: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="templates/workflows/<workflow>.workflow.js (default: the tracked or only one).",
    )
    tracking: SpecText = Field(
        default="",
        description="The workspace's .codemachine/template.json: its completed steps are left out.",
    )
    task_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the workflow's name."
    )
    base_branch: Branch | None = None
    run_policy: RunPolicyIn | None = None


class PlanCheck(_In):
    """A plan to check: its steps as a planner's plan gives them."""

    kind: Literal["plan"]
    steps: list[StepPlanIn] = Field(max_length=500)


class CodeMachineCheck(CodeMachineImport):
    """A CodeMachine import to check: the body of ``POST /projects/{id}/codemachine/import`` with its kind."""

    kind: Literal["codemachine"]


SpecCheckIn = Annotated[PlanCheck | ProtocolImport | CodeMachineCheck, Field(discriminator="kind")]


class PlanRejection(_In):
    reason: str = Field(min_length=1, max_length=4000, description="Why: the planner is told.")


class UsagePublic(BaseModel):
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int


class UsageRow(BaseModel):
    """Agent calls summed: tokens as the engines reported them, cost at the configured prices."""

    key: str = Field(description="The group (a project or run id, a model, a phase, an engine, a UTC day).")
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_output_tokens: int
    cost_micro_usd: int
    cost_usd: float


class UsageReport(BaseModel):
    group_by: str
    data: list[UsageRow]
    total: UsageRow


class PromptVersionPublic(BaseModel):
    version: str = Field(description="The first 12 hex digits of the SHA-256 of the template text.")
    builtin: bool = Field(description="The version deksdenflow ships (else a project's own override).")
    calls: int
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    first_used: datetime | None
    last_used: datetime | None
    outcomes: dict[str, int] = Field(
        description="What its calls led to: plans, executions_completed, qa_pass, qa_fail, ...; for "
        "decompose, steps_refined and steps_kept_as_planned (refinements that stayed invalid)"
    )


class PromptPublic(BaseModel):
    name: str
    phase: str = Field(description="The agent phase whose calls use it.")
    version: str = Field(description="The built-in version.")
    versions: list[PromptVersionPublic] = Field(description="The built-in one first, then those seen.")


class PromptsPublic(BaseModel):
    data: list[PromptPublic]
    count: int


class ProtocolPublic(BaseModel):
    id: str
    project_id: str
    number: int
    protocol_name: str
    slug: str
    task_name: str
    description: str
    base_branch: str
    protocol_root: str
    status: str
    paused_from: str | None
    blocked_reason: str | None = Field(description="Why the run is blocked, or why its planning failed.")
    last_error: str | None = Field(description="The latest error a job or agent call on the run met.")
    retry: RetryPublic | None = Field(
        description="The latest job on the run that failed and will be tried again (null: none)."
    )
    spec_hash: str | None
    spec_findings: list[str] | None = Field(
        description="What the latest spec audit found wrong with the run's plan under the rules of "
        "spec_rules_version (null: nothing). A planned run with findings does not leave planned until it "
        "is planned again (start, reject_plan) or they clear."
    )
    spec_rules_version: int | None = Field(
        description="The spec rules version of the run's latest recorded audit (null: none recorded)."
    )
    pr_number: int | None
    pr_url: str | None
    pr_merged: bool
    branch_head_sha: str | None
    usage: UsagePublic
    run_policy: dict[str, Any] = Field(description="The policy the run follows, fixed when it was created.")
    waiting_for: str | None = Field(
        description="What the run waits on that is not a worker: queue (a slot under the run limits); "
        "checkpoint (a person to continue or cancel after a step's checkpoint); spec (a spec audit found "
        "problems in its plan: it is planned again, or they clear); on a manual run, "
        "action (a person's next action: nothing is with a worker); on an autopilot run, plan_approval (a "
        "person), pull_request (none is open), review (reviewers, or a person to merge), ci (green CI on its "
        "head commit, to merge), merge (the forge); null otherwise."
    )
    created_at: datetime
    updated_at: datetime


class ProtocolCreated(ProtocolPublic):
    event_sequence: int


class ProtocolsPublic(BaseModel):
    data: list[ProtocolPublic]
    count: int


class DirectivePublic(BaseModel):
    """What a step's agent asked of the run (loop, checkpoint, continue, trigger, stop, error, pause)."""

    action: str | None
    reason: str


class StepRuntimeState(BaseModel):
    """What a step's policies did so far."""

    # Times its loop policy was taken.
    loop_iterations: int
    # 0 for a planned step; n for a step n triggers deep.
    trigger_depth: int
    # The step whose trigger queued this one.
    queued_by: str | None
    last_directive: DirectivePublic | None


class StepPublic(BaseModel):
    id: str
    protocol_run_id: str
    project_id: str
    step_index: int
    step_name: str
    step_type: str | None
    status: str
    retries: int
    executing: bool
    owner: str | None
    engine_id: str | None
    model: str | None
    qa_policy: str | None
    qa_attempt: int
    qa_pending: bool
    last_verdict: str | None
    summary: str | None
    commit_sha: str | None
    changed_files: list[str]
    failure_reason: str | None
    # Loop, trigger and checkpoint policies (null: none), and what they did so far: loop_iterations,
    # trigger_depth, queued_by (the step whose trigger queued this one), last_directive.
    policies: dict[str, Any] | None
    runtime_state: StepRuntimeState
    created_at: datetime
    updated_at: datetime


class StepsPublic(BaseModel):
    data: list[StepPublic]
    count: int


class PlannedStepPublic(BaseModel):
    """A step of a plan, every field of it (``StepPlan``)."""

    index: int
    name: str
    step_type: str | None
    engine_id: str | None
    model: str | None
    qa_policy: str | None
    labels: list[str] = Field(description="Kept from the spec the step came from (a user story, an agent).")
    fallbacks: list[str] = Field(
        description="The step's own fallback chain (engine:model); [] the project's."
    )
    critical: bool = Field(description="A second QA reviewer judges its change too.")
    policies: dict[str, Any] | None = Field(
        description="Its loop, trigger and checkpoint policies (StepPolicies), or null: none."
    )
    parallel_group: str | None = Field(
        description="The parallel group it belongs to: the group's steps may execute at once where the run "
        "policy allows (max_parallel_steps); null: it runs alone."
    )


class SpecProblemPublic(BaseModel):
    """One problem, where it is: the file (a spec's file, or the step file of a plan), its line (0 where
    the file has none, e.g. a plan's JSON), the field, and what is wrong."""

    file: str
    line: int
    field: str
    message: str


class SpecCheckPublic(BaseModel):
    """A spec checked against the spec rules of ``rules_version``: nothing is created."""

    valid: bool
    kind: str
    title: str | None = Field(description="An import's title (null for a plan).")
    rules_version: int = Field(description="The version of the spec rules it was checked by.")
    spec_hash: str | None = Field(
        description="The hash of its steps as given (null when it is not valid); a run's own also covers "
        "the paths of its step files, set when it is planned."
    )
    problems: list[SpecProblemPublic]
    steps: list[PlannedStepPublic] = Field(description="What it plans (imports) as.")
    skipped: list[str] = Field(description="Phases or sections of an import left out as done.")
    policies: dict[str, dict[str, Any]] = Field(description="The steps' policies by step name (set ones).")


class PromptRefPublic(BaseModel):
    """A prompt of the prompt registry (GET /prompts) a phase of the run used or will use."""

    name: str
    phase: str
    version: str = Field(description="The version used, or the built-in one it will use.")
    used: bool = Field(
        description="A call of this run used it (else: the built-in version, which the next call uses "
        "unless the project's repository has its own copy in .deksdenflow/prompts/)."
    )
    calls: int
    step_run_id: str | None


class SpecAuditPublic(BaseModel):
    """The run's latest recorded spec audit (protocol_run.spec_audited)."""

    rules_version: int
    problems: list[str]
    time: datetime
    event_seq: int


class SpecStep(PlannedStepPublic):
    step_run_id: str
    prompts: list[PromptRefPublic] = Field(description="The step's execution and QA prompts.")


class SpecPublic(BaseModel):
    """The run's accepted plan (spec), checked again against today's spec rules."""

    protocol_run_id: str
    spec_hash: str | None
    validation_status: Literal["valid", "invalid", "none"] = Field(
        description="The stored plan under today's spec rules (none: the run has no plan yet)."
    )
    rules_version: int = Field(description="Today's spec rules version.")
    problems: list[SpecProblemPublic] = Field(description="What today's rules find wrong with the plan.")
    audit: SpecAuditPublic | None = Field(description="The latest recorded spec audit of the run, if any.")
    source: str | None = Field(description="What the plan was imported from (null: planned by an agent).")
    steps: list[SpecStep]
    policies: dict[str, dict[str, Any]] = Field(description="The steps' policies by step name (set ones).")
    prompts: list[PromptRefPublic] = Field(description="The run's planning prompts (a step's are its own).")


class SpecAuditRunPublic(BaseModel):
    protocol_run_id: str
    protocol_name: str
    problems: list[str] = Field(description="The run's findings now ([]: none).")
    recorded: bool = Field(description="This audit recorded them (they changed): protocol_run.spec_audited.")


class SpecAuditReport(BaseModel):
    """What a spec audit did: every stored plan of a run that has not ended, checked by today's rules."""

    rules_version: int
    runs_checked: int
    recorded: int = Field(description="Runs whose findings changed, recorded as events.")
    runs: list[SpecAuditRunPublic] = Field(description="Runs with findings, or whose findings changed.")


class ActionResult(BaseModel):
    """What an action did: the statuses right after it and the events it appended."""

    protocol_run_id: str
    step_run_id: str | None = None
    action: str
    status: str
    step_status: str | None = None
    events: list[str]
    event_sequence: int


class EventPublic(BaseModel):
    position: int = Field(
        description="The event's place in the log, unique and increasing: resume after it with `after` or "
        "`Last-Event-ID`."
    )
    seq: int = Field(description="The stream sequence of the event's decision (shared by its events).")
    id: str
    type: str
    time: datetime
    project_id: str
    aggregate_type: str
    aggregate_id: str
    protocol_run_id: str | None
    step_run_id: str | None
    aggregate_version: int
    source: str
    actor: str
    correlation_id: str
    causation_id: str
    payload: dict[str, Any]


class QaReportPublic(BaseModel):
    """One QA verdict of a step: every attempt is kept (the log is the record)."""

    qa_attempt: int
    verdict: Literal["PASS", "FAIL"]
    summary: str
    blocking: list[str]
    warnings: list[str]
    notes: list[str]
    next_actions: list[str]
    engine_id: str | None
    model: str | None
    prompt_version: str | None
    time: datetime
    event_seq: int
    report_md: str = Field(description="The report as Markdown (Summary, Findings, Next actions, Verdict).")


class QaReportsPublic(BaseModel):
    data: list[QaReportPublic]
    count: int


class EventsPublic(BaseModel):
    data: list[EventPublic]
    count: int


class BranchPublic(BaseModel):
    name: str
    protocol_run_id: str
    status: str
    head_sha: str | None = Field(description="The head the log knows (last push recorded).")
    pr_url: str | None
    deletion_requested: bool
    deleted: bool = False
    remote_sha: str | None = Field(
        default=None,
        description="The branch head on the remote now (null: not there, or remote not checked).",
    )


class BranchesPublic(BaseModel):
    data: list[BranchPublic]
    count: int
    remote_checked: bool = Field(
        default=False, description="True when the git worker answered with the remote's branches."
    )
    remote_error: str | None = None


class ClarificationsAnswer(_In):
    """Answers to the project's clarification questions, by question key."""

    answers: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")], Annotated[str, Field(max_length=2000)]
    ] = Field(min_length=1, max_length=100)


class BranchDelete(_In):
    confirm: bool = Field(description="Must be true: deleting a branch cannot be undone.")


class QueuePublic(BaseModel):
    """A durable JetStream consumer: how much work waits for it."""

    name: str
    stream: str = Field(description="The log (decisions) or the feed (one message per event) it reads.")
    filter_subjects: list[str]
    num_pending: int
    num_ack_pending: int
    num_redelivered: int
    num_waiting: int


class QueuesPublic(BaseModel):
    stream: str = Field(description="The log: one message per decision.")
    feed_stream: str = Field(description="The feed: one message per event, read by the workers.")
    last_sequence: int
    read_model_checkpoint: int
    data: list[QueuePublic]


class JobPublic(BaseModel):
    """Work requested from a worker and not finished yet."""

    kind: Literal["planning", "execution", "qa"]
    status: Literal["queued", "running"]
    project_id: str
    protocol_run_id: str
    step_run_id: str | None
    owner: str | None
    attempt: int
    updated_at: datetime


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class WebhookSecretCreated(BaseModel):
    """A per-project webhook secret: shown this once. The previous one stops working."""

    project_id: str
    webhook_secret: str
    generation: int
    event_sequence: int


class WebhookAccepted(BaseModel):
    """What became of a delivery: recorded for its run, recorded as ignored, or a redelivery."""

    status: Literal["accepted", "ignored", "duplicate"]
    delivery_id: str
    webhook_id: str
    protocol_run_id: str | None
    reason: str | None = None
    event_sequence: int


class DiffFilePublic(BaseModel):
    path: str
    patch: str = Field(description="This file's part of the unified diff.")


class DiffPublic(BaseModel):
    """A unified diff made by the git worker from its mirror of the project's repository."""

    protocol_run_id: str
    commit: str | None = Field(description="The commit shown (its change against its first parent), if one.")
    base: str | None = Field(description="The base branch the head is compared with (merge base), if so.")
    head: str | None
    subject: str
    truncated: bool = Field(description="The patch was cut at the size limit.")
    files: list[DiffFilePublic]
    patch: str

"""The Project aggregate: a registered git repository, its onboarding and its per-project tokens."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypedDict, assert_never

from pydantic import BaseModel, ConfigDict

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiPolicy,
    CiProvider,
    ClarificationQuestion,
    EngineDefaults,
    FallbackChains,
    JobRetry,
    ModelDefaults,
    RunPolicy,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as ev
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.context import DecisionContext, InvariantViolation
from deksdenflow_core.domain.git_url import check_git_url
from deksdenflow_core.errors import IllegalTransition, InvalidCommand, NotFound

AGGREGATE_TYPE = "project"

ProjectEvent = (
    ev.ProjectRegistered
    | ev.ProjectOnboardingRequested
    | ev.ProjectOnboarded
    | ev.ProjectOnboardingFailed
    | ev.ProjectClarificationAnswered
    | ev.ProjectTokenIssued
    | ev.ProjectTokenRevoked
    | ev.ProjectCiPolicySet
    | ev.ProjectWebhookSecretRotated
    | ev.ProjectRunPolicySet
    | ev.ProjectJobRetryScheduled
    | ev.ProjectFallbacksSet
)
ProjectCommand = (
    cmd.RegisterProject
    | cmd.RequestOnboarding
    | cmd.RecordOnboardingCompleted
    | cmd.RecordOnboardingFailed
    | cmd.AnswerClarifications
    | cmd.IssueProjectToken
    | cmd.RevokeProjectToken
    | cmd.SetCiPolicy
    | cmd.RotateWebhookSecret
    | cmd.SetRunPolicy
    | cmd.RecordProjectJobRetry
    | cmd.SetFallbacks
)

# More CI fixes than this per step is a loop, not a policy.
MAX_CI_FIX_ATTEMPTS = 10

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ProjectStatus(StrEnum):
    """Where a project is in its onboarding."""

    REGISTERED = "registered"
    ONBOARDING = "onboarding"
    READY = "ready"
    # Blocking clarification questions are unanswered.
    BLOCKED = "blocked"
    ONBOARDING_FAILED = "onboarding_failed"


class ProjectState(BaseModel):
    """The folded state of one project."""

    model_config = ConfigDict(frozen=True)

    project_id: str
    exists: bool = False
    status: ProjectStatus = ProjectStatus.REGISTERED
    name: str = ""
    git_url: str = ""
    base_branch: str = "main"
    ci_provider: CiProvider = CiProvider.UNSPECIFIED
    default_models: ModelDefaults = ModelDefaults()
    default_engines: EngineDefaults = EngineDefaults()
    forge_repo: str = ""
    local_path: str = ""
    onboarding_attempt: int = 0
    questions: tuple[ClarificationQuestion, ...] = ()
    answers: dict[str, str] = {}
    # token_id -> sha256 hex of the active tokens.
    tokens: dict[str, str] = {}
    # None: the git worker's settings decide.
    ci_policy: CiPolicy | None = None
    # 0: no per-project webhook secret was issued (only the global one authenticates).
    webhook_secret_generation: int = 0
    # Resolved; None for a project registered before run policies (its protocols are manual).
    run_policy: RunPolicy | None = None
    # Fallback engines and models per phase (None: the worker's).
    fallbacks: FallbackChains | None = None
    # Why the project is in its status, when that needs a person: the onboarding's failure, or the
    # blocking questions left to answer ("" otherwise).
    status_reason: str = ""
    # The latest error any job on the project met (kept after it passed, for the record).
    last_error: str = ""
    # The job that failed and will be tried again, until it delivers a result.
    retry: JobRetry | None = None
    version: int = 0

    @classmethod
    def initial(cls, project_id: str) -> ProjectState:
        return cls(project_id=project_id)

    @property
    def unanswered_blocking(self) -> tuple[str, ...]:
        return tuple(q.key for q in self.questions if q.blocking and q.key not in self.answers)


class ProjectUpdate(TypedDict, total=False):
    """Fields of a :class:`ProjectState` an event may change (all but its id), typed so that ``evolve``
    cannot write a misspelt field (``model_copy`` would add it silently)."""

    exists: bool
    status: ProjectStatus
    name: str
    git_url: str
    base_branch: str
    ci_provider: CiProvider
    default_models: ModelDefaults
    default_engines: EngineDefaults
    forge_repo: str
    local_path: str
    onboarding_attempt: int
    questions: tuple[ClarificationQuestion, ...]
    answers: dict[str, str]
    tokens: dict[str, str]
    ci_policy: CiPolicy | None
    webhook_secret_generation: int
    run_policy: RunPolicy | None
    fallbacks: FallbackChains | None
    status_reason: str
    last_error: str
    retry: JobRetry | None
    version: int


def decide_project(state: ProjectState, command: ProjectCommand, ctx: DecisionContext) -> list[ProjectEvent]:
    """The events ``command`` produces for ``state``, or a ``DomainError``."""
    del ctx  # project decisions need neither time nor new ids today; kept for a uniform signature
    if isinstance(command, cmd.RegisterProject):
        return [_register(state, command)]
    if not state.exists:
        raise NotFound(f"project {state.project_id} does not exist", project_id=state.project_id)
    match command:
        case cmd.RequestOnboarding():
            if state.status is ProjectStatus.ONBOARDING:
                raise _illegal(state, "onboarding is already in progress")
            return [ev.ProjectOnboardingRequested(attempt=state.onboarding_attempt + 1)]
        case cmd.RecordOnboardingCompleted():
            if _stale_onboarding_result(state, command.attempt):
                return []
            return [
                ev.ProjectOnboarded(
                    attempt=command.attempt,
                    local_path=command.local_path,
                    assets_added=command.assets_added,
                    questions=command.questions,
                )
            ]
        case cmd.RecordOnboardingFailed():
            if _stale_onboarding_result(state, command.attempt):
                return []
            return [ev.ProjectOnboardingFailed(attempt=command.attempt, reason=command.reason)]
        case cmd.AnswerClarifications():
            return _answer(state, command)
        case cmd.IssueProjectToken():
            if not command.token_id or not _SHA256_HEX.match(command.token_hash):
                raise InvalidCommand("a token needs an id and a lowercase hex SHA-256 hash")
            if command.token_id in state.tokens:
                raise InvalidCommand(f"token {command.token_id} already exists")
            return [
                ev.ProjectTokenIssued(
                    token_id=command.token_id, token_hash=command.token_hash, label=command.label
                )
            ]
        case cmd.RevokeProjectToken():
            if command.token_id not in state.tokens:
                raise NotFound(f"token {command.token_id} is not an active token of this project")
            return [ev.ProjectTokenRevoked(token_id=command.token_id)]
        case cmd.SetCiPolicy():
            policy = _ci_policy(command.ci_policy or CiPolicy())
            if policy == state.ci_policy:
                return []
            return [ev.ProjectCiPolicySet(ci_policy=policy)]
        case cmd.RotateWebhookSecret():
            return [ev.ProjectWebhookSecretRotated(generation=state.webhook_secret_generation + 1)]
        case cmd.SetRunPolicy():
            # A whole policy: what it leaves unset takes the defaults, not the previous policy's values.
            resolved = run_policy.resolve(None, command.run_policy)
            if resolved == state.run_policy:
                return []
            return [ev.ProjectRunPolicySet(run_policy=resolved)]
        case cmd.RecordProjectJobRetry():
            return [ev.ProjectJobRetryScheduled(retry=_job_retry(command.retry))]
        case cmd.SetFallbacks():
            chains = check_fallbacks(command.fallbacks)
            if chains == state.fallbacks:
                return []
            return [ev.ProjectFallbacksSet(fallbacks=chains)]
        case _:
            assert_never(command)


def _register(state: ProjectState, command: cmd.RegisterProject) -> ev.ProjectRegistered:
    if state.exists:
        raise _illegal(state, "project is already registered")
    if not command.name.strip():
        raise InvalidCommand("name must not be empty", field="name")
    git_url = check_git_url(command.git_url)
    return ev.ProjectRegistered(
        project_id=state.project_id,
        name=command.name.strip(),
        git_url=git_url,
        base_branch=command.base_branch or "main",
        ci_provider=command.ci_provider,
        default_models=command.default_models,
        default_engines=command.default_engines,
        local_path=command.local_path,
        forge_repo=command.forge_repo,
        ci_policy=_ci_policy(command.ci_policy) if command.ci_policy is not None else None,
        run_policy=run_policy.resolve(None, command.run_policy),
        fallbacks=check_fallbacks(command.fallbacks) if command.fallbacks is not None else None,
    )


FALLBACK_PHASES = ("planning", "decompose", "exec", "qa", "discovery")
MAX_FALLBACKS = 5
# "engine" or "engine:model": an engine id (lowercase, dashes), then any model name without blanks.
_FALLBACK = re.compile(r"^[a-z][a-z0-9-]{0,39}(:[^\s:][^\s]{0,199})?$")


def is_fallback_entry(entry: str) -> bool:
    """Whether ``entry`` reads as ``engine`` or ``engine:model``."""
    return bool(_FALLBACK.match(entry))


def check_fallbacks(chains: FallbackChains | None) -> FallbackChains | None:
    """``chains`` if every entry reads as ``engine[:model]`` and no phase has more than
    ``MAX_FALLBACKS``; None when every chain is empty (the worker's chains apply)."""
    if chains is None:
        return None
    for phase in FALLBACK_PHASES:
        entries: list[str] = getattr(chains, phase)
        if len(entries) > MAX_FALLBACKS:
            raise InvalidCommand(
                f"fallbacks.{phase}: at most {MAX_FALLBACKS} entries", field=f"fallbacks.{phase}"
            )
        for entry in entries:
            if not _FALLBACK.match(entry):
                raise InvalidCommand(
                    f"fallbacks.{phase}: {entry!r} is not engine or engine:model", field=f"fallbacks.{phase}"
                )
    return chains if any(getattr(chains, phase) for phase in FALLBACK_PHASES) else None


def _job_retry(retry: JobRetry | None) -> JobRetry:
    if retry is None or not retry.job or not retry.request_event_id:
        raise InvalidCommand("a job retry names its job and request", field="retry")
    return retry


def _waiting_for_answers(questions: tuple[ClarificationQuestion, ...], answers: dict[str, str]) -> str:
    keys = [q.key for q in questions if q.blocking and q.key not in answers]
    return f"waiting for answers to: {', '.join(keys)}" if keys else ""


def _ci_policy(policy: CiPolicy) -> CiPolicy:
    if not 0 <= policy.fix_attempts <= MAX_CI_FIX_ATTEMPTS:
        raise InvalidCommand(
            f"ci_policy.fix_attempts must be between 0 and {MAX_CI_FIX_ATTEMPTS}",
            field="ci_policy.fix_attempts",
        )
    return policy


def _stale_onboarding_result(state: ProjectState, attempt: int) -> bool:
    """A result for an attempt that is over (duplicate or superseded) changes nothing."""
    if attempt == state.onboarding_attempt and state.status is ProjectStatus.ONBOARDING:
        return False
    if attempt <= state.onboarding_attempt:
        return True
    raise InvalidCommand(f"onboarding attempt {attempt} was never requested", attempt=attempt)


def _answer(state: ProjectState, command: cmd.AnswerClarifications) -> list[ProjectEvent]:
    known = {q.key for q in state.questions}
    unknown = sorted(set(command.answers) - known)
    if unknown:
        raise InvalidCommand(f"no such clarification question: {', '.join(unknown)}", unknown_keys=unknown)
    if not command.answers:
        raise InvalidCommand("answers must not be empty", field="answers")
    return [
        ev.ProjectClarificationAnswered(key=key, answer=answer)
        for key, answer in sorted(command.answers.items())
        if state.answers.get(key) != answer
    ]


def _illegal(state: ProjectState, message: str) -> IllegalTransition:
    return IllegalTransition(message, current_status=state.status.value, project_id=state.project_id)


def evolve_project(state: ProjectState, event: ProjectEvent) -> ProjectState:
    """Fold one event into the project's state."""
    if not state.exists and not isinstance(event, ev.ProjectRegistered):
        raise InvariantViolation(f"{type(event).__name__} before project.registered")
    update: ProjectUpdate
    match event:
        case ev.ProjectRegistered():
            if state.exists:
                raise InvariantViolation("project registered twice")
            update = {
                "exists": True,
                "name": event.name,
                "git_url": event.git_url,
                "base_branch": event.base_branch,
                "ci_provider": event.ci_provider,
                "default_models": event.default_models or ModelDefaults(),
                "default_engines": event.default_engines or EngineDefaults(),
                "forge_repo": event.forge_repo,
                "local_path": event.local_path,
                "ci_policy": event.ci_policy,
                "run_policy": event.run_policy,
                "fallbacks": event.fallbacks,
            }
        case ev.ProjectOnboardingRequested():
            update = {
                "status": ProjectStatus.ONBOARDING,
                "onboarding_attempt": event.attempt,
                "status_reason": "",
                "retry": None,
            }
        case ev.ProjectOnboarded():
            questions = event.questions
            answers = {k: v for k, v in state.answers.items() if k in {q.key for q in questions}}
            reason = _waiting_for_answers(questions, answers)
            update = {
                "status": ProjectStatus.BLOCKED if reason else ProjectStatus.READY,
                "local_path": event.local_path or state.local_path,
                "questions": questions,
                "answers": answers,
                "status_reason": reason,
                "retry": None,
            }
        case ev.ProjectOnboardingFailed():
            update = {
                "status": ProjectStatus.ONBOARDING_FAILED,
                "status_reason": event.reason,
                "last_error": event.reason,
                "retry": None,
            }
        case ev.ProjectClarificationAnswered():
            answers = {**state.answers, event.key: event.answer}
            update = {"answers": answers}
            if state.status is ProjectStatus.BLOCKED:
                reason = _waiting_for_answers(state.questions, answers)
                update["status_reason"] = reason
                if not reason:
                    update["status"] = ProjectStatus.READY
        case ev.ProjectTokenIssued():
            update = {"tokens": {**state.tokens, event.token_id: event.token_hash}}
        case ev.ProjectTokenRevoked():
            update = {"tokens": {k: v for k, v in state.tokens.items() if k != event.token_id}}
        case ev.ProjectCiPolicySet():
            update = {"ci_policy": event.ci_policy}
        case ev.ProjectWebhookSecretRotated():
            update = {"webhook_secret_generation": event.generation}
        case ev.ProjectRunPolicySet():
            update = {"run_policy": event.run_policy}
        case ev.ProjectFallbacksSet():
            update = {"fallbacks": event.fallbacks}
        case ev.ProjectJobRetryScheduled():
            update = {"retry": event.retry, "last_error": event.retry.error if event.retry else ""}
        case _:
            assert_never(event)
    return state.model_copy(update={**update, "version": state.version + 1})

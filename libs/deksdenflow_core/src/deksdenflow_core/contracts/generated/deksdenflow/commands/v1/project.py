# Generated from deksdenflow/commands/v1/project.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/commands/v1/project.proto (proto package deksdenflow.commands.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class RegisterProject(_base.ContractModel):
    """Register a git repository as a project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RegisterProject"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.register"

    name: str = ""
    git_url: str = ""
    base_branch: str = _pydantic.Field(default="", description='Defaults to "main".')
    ci_provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    default_models: _deksdenflow_common_v1_common.ModelDefaults | None = None
    local_path: str = ""
    default_engines: _deksdenflow_common_v1_common.EngineDefaults | None = None
    forge_repo: str = _pydantic.Field(
        default="",
        description='The repository on the forge ("owner/repo", GitLab "group/sub/project") when git_url does not say it\n(a mirror, an SSH alias, a local path).',
    )
    ci_policy: _deksdenflow_common_v1_common.CiPolicy | None = None
    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = _pydantic.Field(
        default=None,
        description="How its protocols advance; unset fields take the defaults (autopilot, plan approved automatically,\nQA after each execution, a draft PR after the first push marked ready when done, no merge).",
    )
    fallbacks: _deksdenflow_common_v1_common.FallbackChains | None = _pydantic.Field(
        default=None, description="Fallback engines and models per phase (unset: the worker's)."
    )


class RequestOnboarding(_base.ContractModel):
    """Ask the git worker to onboard (clone and prepare) the project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RequestOnboarding"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.request_onboarding"


class RecordOnboardingCompleted(_base.ContractModel):
    """Worker result: onboarding succeeded."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordOnboardingCompleted"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.record_onboarding_completed"

    attempt: int = 0
    local_path: str = ""
    assets_added: tuple[str, ...] = ()
    questions: tuple[_deksdenflow_common_v1_common.ClarificationQuestion, ...] = ()


class RecordOnboardingFailed(_base.ContractModel):
    """Worker result: onboarding failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordOnboardingFailed"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.record_onboarding_failed"

    attempt: int = 0
    reason: str = ""


class AnswerClarifications(_base.ContractModel):
    """Answer clarification questions of the project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.AnswerClarifications"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.answer_clarifications"

    answers: dict[str, str] = _pydantic.Field(default_factory=dict, description="question key -> answer")


class IssueProjectToken(_base.ContractModel):
    """Issue a per-project token (the caller keeps the token; only its hash is recorded)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.IssueProjectToken"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.issue_token"

    token_id: str = ""
    token_hash: str = ""
    label: str = ""


class RevokeProjectToken(_base.ContractModel):
    """Revoke a per-project token."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RevokeProjectToken"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.revoke_token"

    token_id: str = ""


class SetCiPolicy(_base.ContractModel):
    """Set the project's CI policy."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.SetCiPolicy"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.set_ci_policy"

    ci_policy: _deksdenflow_common_v1_common.CiPolicy | None = None


class RotateWebhookSecret(_base.ContractModel):
    """Issue a new per-project webhook secret (the previous one stops working)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RotateWebhookSecret"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.rotate_webhook_secret"


class SetRunPolicy(_base.ContractModel):
    """Replace the project's run policy (protocols created from now on take it; running ones keep theirs)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.SetRunPolicy"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.set_run_policy"

    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = None


class RecordProjectJobRetry(_base.ContractModel):
    """Record that a job on the project failed and will be tried again."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordProjectJobRetry"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.record_job_retry"

    retry: _deksdenflow_common_v1_common.JobRetry | None = None


class SetFallbacks(_base.ContractModel):
    """Replace the project's fallback chains (empty chains: the worker's)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.SetFallbacks"
    COMMAND_TYPE: _typing.ClassVar[str] = "project.set_fallbacks"

    fallbacks: _deksdenflow_common_v1_common.FallbackChains | None = None

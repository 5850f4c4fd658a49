# Generated from deksdenflow/events/v1/project.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/events/v1/project.proto (proto package deksdenflow.events.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class ProjectRegistered(_base.ContractModel):
    """A git repository was registered as a project."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectRegistered"
    EVENT_TYPE: _typing.ClassVar[str] = "project.registered"

    project_id: str = ""
    name: str = ""
    git_url: str = ""
    base_branch: str = ""
    ci_provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    default_models: _deksdenflow_common_v1_common.ModelDefaults | None = None
    local_path: str = _pydantic.Field(
        default="", description="An existing checkout to use instead of cloning, if any."
    )
    default_engines: _deksdenflow_common_v1_common.EngineDefaults | None = None
    forge_repo: str = _pydantic.Field(
        default="",
        description='The repository on the forge ("owner/repo", GitLab "group/sub/project") when git_url does not say it\n(a mirror, an SSH alias, a local path).',
    )
    ci_policy: _deksdenflow_common_v1_common.CiPolicy | None = _pydantic.Field(
        default=None, description="How the project reacts to CI; unset: the git worker's settings decide."
    )
    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = _pydantic.Field(
        default=None,
        description="Resolved (every default filled in). Unset on projects registered before run policies: their\nprotocols are manual.",
    )
    fallbacks: _deksdenflow_common_v1_common.FallbackChains | None = _pydantic.Field(
        default=None, description="Fallback engines and models per phase (unset: the worker's)."
    )


class ProjectOnboardingRequested(_base.ContractModel):
    """Onboarding (clone, starter assets, identity, questions) was requested from the git worker."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectOnboardingRequested"
    EVENT_TYPE: _typing.ClassVar[str] = "project.onboarding_requested"

    attempt: int = 0


class ProjectOnboarded(_base.ContractModel):
    """The repository is cloned and prepared; questions may remain."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectOnboarded"
    EVENT_TYPE: _typing.ClassVar[str] = "project.onboarded"

    attempt: int = 0
    local_path: str = ""
    assets_added: tuple[str, ...] = _pydantic.Field(
        default=(), description="Starter assets that were added (existing files are never overwritten)."
    )
    questions: tuple[_deksdenflow_common_v1_common.ClarificationQuestion, ...] = ()


class ProjectOnboardingFailed(_base.ContractModel):
    """Onboarding failed for good."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectOnboardingFailed"
    EVENT_TYPE: _typing.ClassVar[str] = "project.onboarding_failed"

    attempt: int = 0
    reason: str = ""


class ProjectClarificationAnswered(_base.ContractModel):
    """A clarification question was answered."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectClarificationAnswered"
    EVENT_TYPE: _typing.ClassVar[str] = "project.clarification_answered"

    key: str = ""
    answer: str = ""


class ProjectTokenIssued(_base.ContractModel):
    """A per-project API token was issued. Only its SHA-256 hash is kept; the token itself is shown once."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectTokenIssued"
    EVENT_TYPE: _typing.ClassVar[str] = "project.token_issued"

    token_id: str = ""
    token_hash: str = _pydantic.Field(default="", description="Hex SHA-256 of the token.")
    label: str = ""


class ProjectTokenRevoked(_base.ContractModel):
    """A per-project API token was revoked."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectTokenRevoked"
    EVENT_TYPE: _typing.ClassVar[str] = "project.token_revoked"

    token_id: str = ""


class ProjectCiPolicySet(_base.ContractModel):
    """The project's CI policy changed."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectCiPolicySet"
    EVENT_TYPE: _typing.ClassVar[str] = "project.ci_policy_set"

    ci_policy: _deksdenflow_common_v1_common.CiPolicy | None = None


class ProjectWebhookSecretRotated(_base.ContractModel):
    """A new per-project webhook secret was issued; the previous one stops working. The secret itself is
    never recorded: it is derived from the global webhook secret, the project id and this generation.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectWebhookSecretRotated"
    EVENT_TYPE: _typing.ClassVar[str] = "project.webhook_secret_rotated"

    generation: int = 0


class ProjectRunPolicySet(_base.ContractModel):
    """The project's run policy was replaced (resolved)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectRunPolicySet"
    EVENT_TYPE: _typing.ClassVar[str] = "project.run_policy_set"

    run_policy: _deksdenflow_common_v1_common.RunPolicy | None = None


class ProjectJobRetryScheduled(_base.ContractModel):
    """A job on the project failed and will be tried again (the reads show why and when)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectJobRetryScheduled"
    EVENT_TYPE: _typing.ClassVar[str] = "project.job_retry_scheduled"

    retry: _deksdenflow_common_v1_common.JobRetry | None = None


class ProjectFallbacksSet(_base.ContractModel):
    """The project's fallback chains were replaced."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.ProjectFallbacksSet"
    EVENT_TYPE: _typing.ClassVar[str] = "project.fallbacks_set"

    fallbacks: _deksdenflow_common_v1_common.FallbackChains | None = None

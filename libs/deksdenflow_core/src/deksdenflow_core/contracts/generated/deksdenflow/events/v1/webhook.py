# Generated from deksdenflow/events/v1/webhook.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/events/v1/webhook.proto (proto package deksdenflow.events.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class WebhookReceived(_base.ContractModel):
    """A webhook delivery from GitHub or GitLab (or the CI callback), authenticated and normalised. One
    aggregate per delivery: the aggregate id derives from the provider's delivery id, so a redelivery finds
    it recorded and changes nothing, however late it comes.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.WebhookReceived"
    EVENT_TYPE: _typing.ClassVar[str] = "webhook.received"

    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    delivery_id: str = _pydantic.Field(
        default="",
        description="X-GitHub-Delivery; GitLab Idempotency-Key, X-Gitlab-Event-UUID or the body's hash.",
    )
    event: str = _pydantic.Field(
        default="",
        description="The provider's event name (workflow_run, check_suite, check_run, status, pull_request, pipeline, ...).",
    )
    action: str = ""
    kind: str = _pydantic.Field(default="", description='"ci", "pull_request", "review", "ping" or "other".')
    repository: str = ""
    branch: str = ""
    head_sha: str = ""
    ci_status: _typing.Annotated[
        _deksdenflow_common_v1_common.CiStatus, _base.open_enum_field(_deksdenflow_common_v1_common.CiStatus)
    ] = _deksdenflow_common_v1_common.CiStatus.UNSPECIFIED
    raw_status: str = ""
    run_url: str = ""
    ci_name: str = ""
    pr_number: int = 0
    pr_url: str = ""
    pr_merged: bool = False
    pr_closed: bool = _pydantic.Field(default=False, description="Closed without merge.")
    merge_commit_sha: str = ""
    protocol_run_id: str = _pydantic.Field(
        default="", description="The run it applies to; empty when none matched."
    )
    ignored_reason: str = _pydantic.Field(
        default="",
        description="Non-empty: nothing follows from this delivery, and why (unknown run, event not handled, ...).",
    )
    body_sha256: str = _pydantic.Field(
        default="",
        description="Hex SHA-256 of the raw body, and its size: the audit trail without the payload itself.",
    )
    body_bytes: int = 0
    authenticated_by: str = _pydantic.Field(
        default="", description='"global" or "project": which secret authenticated it.'
    )
    project_id: str = _pydantic.Field(
        default="", description="The project it belongs to; empty when none matched."
    )
    ci_run: _deksdenflow_common_v1_common.CiRunRef | None = _pydantic.Field(
        default=None,
        description='The CI run a "ci" delivery is about (its check, id, attempt and time), to order its reports.',
    )
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = _pydantic.Field(
        default=None,
        description='What a reviewer said, for a "review" delivery (GitHub pull_request_review, GitLab notes and approvals).',
    )


class WebhookProcessed(_base.ContractModel):
    """The delivery was applied to its run (or refused by it): what came of it."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.WebhookProcessed"
    EVENT_TYPE: _typing.ClassVar[str] = "webhook.processed"

    protocol_run_id: str = ""
    outcome: _typing.Annotated[
        _deksdenflow_common_v1_common.WebhookOutcome,
        _base.open_enum_field(_deksdenflow_common_v1_common.WebhookOutcome),
    ] = _deksdenflow_common_v1_common.WebhookOutcome.UNSPECIFIED
    detail: str = ""
    event_types: tuple[str, ...] = _pydantic.Field(
        default=(), description="Types of the events it appended to the run."
    )

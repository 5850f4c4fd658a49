# Generated from deksdenflow/commands/v1/webhook.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/commands/v1/webhook.proto (proto package deksdenflow.commands.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import common as _deksdenflow_common_v1_common


class ReceiveWebhook(_base.ContractModel):
    """Record an authenticated webhook delivery (a redelivery is recorded once)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.ReceiveWebhook"
    COMMAND_TYPE: _typing.ClassVar[str] = "webhook.receive"

    provider: _typing.Annotated[
        _deksdenflow_common_v1_common.CiProvider,
        _base.open_enum_field(_deksdenflow_common_v1_common.CiProvider),
    ] = _deksdenflow_common_v1_common.CiProvider.UNSPECIFIED
    delivery_id: str = ""
    event: str = ""
    action: str = ""
    kind: str = ""
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
    pr_closed: bool = False
    merge_commit_sha: str = ""
    protocol_run_id: str = ""
    ignored_reason: str = ""
    body_sha256: str = ""
    body_bytes: int = 0
    authenticated_by: str = ""
    project_id: str = ""
    ci_run: _deksdenflow_common_v1_common.CiRunRef | None = _pydantic.Field(
        default=None, description='The CI run a "ci" delivery is about (its check, id, attempt and time).'
    )
    review: _deksdenflow_common_v1_common.ReviewFeedback | None = _pydantic.Field(
        default=None, description='What a reviewer said, for a "review" delivery.'
    )


class RecordWebhookProcessed(_base.ContractModel):
    """Record what applying the delivery to its run did."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordWebhookProcessed"
    COMMAND_TYPE: _typing.ClassVar[str] = "webhook.record_processed"

    protocol_run_id: str = ""
    outcome: _typing.Annotated[
        _deksdenflow_common_v1_common.WebhookOutcome,
        _base.open_enum_field(_deksdenflow_common_v1_common.WebhookOutcome),
    ] = _deksdenflow_common_v1_common.WebhookOutcome.UNSPECIFIED
    detail: str = ""
    event_types: tuple[str, ...] = ()

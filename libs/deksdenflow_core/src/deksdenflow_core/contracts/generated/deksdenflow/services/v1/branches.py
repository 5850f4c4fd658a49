# Generated from deksdenflow/services/v1/branches.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/services/v1/branches.proto (proto package deksdenflow.services.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base


class ListBranchesRequest(_base.ContractModel):
    """Which project's branches the remote has."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.services.v1.ListBranchesRequest"

    project_id: str = ""


class ListBranchesReply(_base.ContractModel):
    """What the remote has, as the git worker sees it; error set when it cannot say (and heads is empty)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.services.v1.ListBranchesReply"

    heads: dict[str, str] = _pydantic.Field(
        default_factory=dict, description="branch name -> head commit sha"
    )
    error: str = _pydantic.Field(
        default="",
        description="Why the remote's branches could not be listed; empty when heads is the answer.",
    )

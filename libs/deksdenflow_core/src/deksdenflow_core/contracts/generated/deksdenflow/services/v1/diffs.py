# Generated from deksdenflow/services/v1/diffs.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/services/v1/diffs.proto (proto package deksdenflow.services.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base


class GetDiffRequest(_base.ContractModel):
    """One commit's change (commit set), or a head against the base branch (base_branch and head set)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.services.v1.GetDiffRequest"

    project_id: str = ""
    commit: str = _pydantic.Field(
        default="", description="A commit sha: its change against its first parent."
    )
    base_branch: str = _pydantic.Field(
        default="",
        description="With head: the change from the merge base of origin/<base_branch> and head, to head.",
    )
    head: str = ""
    max_bytes: int = _pydantic.Field(
        default=0, description="The patch is cut at this many bytes (truncated is then set)."
    )


class GetDiffReply(_base.ContractModel):
    """The unified diff, or why it could not be made (error set, patch empty)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.services.v1.GetDiffReply"

    patch: str = ""
    subject: str = _pydantic.Field(default="", description="The commit's subject line (for a commit).")
    truncated: bool = False
    error: str = ""

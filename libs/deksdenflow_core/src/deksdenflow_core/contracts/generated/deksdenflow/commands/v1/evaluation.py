# Generated from deksdenflow/commands/v1/evaluation.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/commands/v1/evaluation.proto (proto package deksdenflow.commands.v1)."""

from __future__ import annotations

import typing as _typing

from deksdenflow_core.contracts import base as _base

from ...common.v1 import evaluation as _deksdenflow_common_v1_evaluation


class StartEvaluation(_base.ContractModel):
    """Begin an evaluation."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.StartEvaluation"
    COMMAND_TYPE: _typing.ClassVar[str] = "evaluation.start"

    evaluation_id: str = ""
    mode: str = ""
    baseline: str = ""
    task_ids: tuple[str, ...] = ()
    variants: tuple[_deksdenflow_common_v1_evaluation.EvaluationVariant, ...] = ()
    thresholds: _deksdenflow_common_v1_evaluation.EvaluationThresholds | None = None
    scorer: str = ""


class RecordEvaluationScore(_base.ContractModel):
    """Record the scores of one run of the evaluation."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RecordEvaluationScore"
    COMMAND_TYPE: _typing.ClassVar[str] = "evaluation.record_score"

    score: _deksdenflow_common_v1_evaluation.EvaluationScore | None = None


class CompleteEvaluation(_base.ContractModel):
    """Record the evaluation's conclusion."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.CompleteEvaluation"
    COMMAND_TYPE: _typing.ClassVar[str] = "evaluation.complete"

    summaries: tuple[_deksdenflow_common_v1_evaluation.EvaluationSummary, ...] = ()
    problems: tuple[str, ...] = ()
    passed: bool = False


class RescoreEvaluation(_base.ContractModel):
    """Record a re-score of the evaluation's stored runs."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.commands.v1.RescoreEvaluation"
    COMMAND_TYPE: _typing.ClassVar[str] = "evaluation.rescore"

    scorer: str = ""
    scores: tuple[_deksdenflow_common_v1_evaluation.EvaluationScore, ...] = ()
    summaries: tuple[_deksdenflow_common_v1_evaluation.EvaluationSummary, ...] = ()
    problems: tuple[str, ...] = ()
    passed: bool = False

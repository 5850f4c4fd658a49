# Generated from deksdenflow/events/v1/evaluation.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/events/v1/evaluation.proto (proto package deksdenflow.events.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base

from ...common.v1 import evaluation as _deksdenflow_common_v1_evaluation


class EvaluationStarted(_base.ContractModel):
    """An evaluation began: variants (prompt versions x model x engine) run on fixture tasks through the
    whole system, each compared with the baseline.
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.EvaluationStarted"
    EVENT_TYPE: _typing.ClassVar[str] = "evaluation.started"

    evaluation_id: str = ""
    mode: str = _pydantic.Field(
        default="",
        description="replay (cassettes), author (the authored model, recorded) or live (the real API, recorded).",
    )
    baseline: str = ""
    task_ids: tuple[str, ...] = ()
    variants: tuple[_deksdenflow_common_v1_evaluation.EvaluationVariant, ...] = ()
    thresholds: _deksdenflow_common_v1_evaluation.EvaluationThresholds | None = None
    scorer: str = _pydantic.Field(default="", description="Which scorers score its runs.")


class EvaluationTaskScored(_base.ContractModel):
    """One run of the evaluation was scored."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.EvaluationTaskScored"
    EVENT_TYPE: _typing.ClassVar[str] = "evaluation.task_scored"

    score: _deksdenflow_common_v1_evaluation.EvaluationScore | None = None


class EvaluationCompleted(_base.ContractModel):
    """Every run was scored: each variant's totals, its regressions, and whether the evaluation passed (no
    unexpected regression, every canary caught).
    """

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.EvaluationCompleted"
    EVENT_TYPE: _typing.ClassVar[str] = "evaluation.completed"

    summaries: tuple[_deksdenflow_common_v1_evaluation.EvaluationSummary, ...] = ()
    problems: tuple[str, ...] = ()
    passed: bool = False


class EvaluationRescored(_base.ContractModel):
    """The stored runs were scored again (a scorer changed) from their branches and events, no agent called."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.events.v1.EvaluationRescored"
    EVENT_TYPE: _typing.ClassVar[str] = "evaluation.rescored"

    scorer: str = ""
    scores: tuple[_deksdenflow_common_v1_evaluation.EvaluationScore, ...] = ()
    summaries: tuple[_deksdenflow_common_v1_evaluation.EvaluationSummary, ...] = ()
    problems: tuple[str, ...] = ()
    passed: bool = False

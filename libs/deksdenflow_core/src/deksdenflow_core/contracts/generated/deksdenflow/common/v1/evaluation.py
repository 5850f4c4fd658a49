# Generated from deksdenflow/common/v1/evaluation.proto by protoc-gen-dfpy. DO NOT EDIT.
"""Bindings of deksdenflow/common/v1/evaluation.proto (proto package deksdenflow.common.v1)."""

from __future__ import annotations

import typing as _typing

import pydantic as _pydantic

from deksdenflow_core.contracts import base as _base


class EvaluationVariant(_base.ContractModel):
    """A variant an evaluation compares: an engine, a model and the prompt versions its calls use."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.EvaluationVariant"

    id: str = ""
    engine_id: str = ""
    model: str = ""
    prompt_versions: tuple[str, ...] = _pydantic.Field(
        default=(),
        description='"name@version" of every prompt the variant\'s calls use (overridden or built-in).',
    )
    expect_regression: bool = _pydantic.Field(
        default=False, description="A canary: a variant kept to prove the evaluation catches a worse one."
    )
    label: str = _pydantic.Field(
        default="", description="Engine, model and overridden prompts, as the table shows them."
    )


class EvaluationThresholds(_base.ContractModel):
    """How far a variant may fall below the baseline before it is a regression (rates in [0, 1])."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.EvaluationThresholds"

    resolved_drop: float = 0.0
    qa_drop: float = 0.0


class EvaluationScore(_base.ContractModel):
    """One run of an evaluation (a task with a variant) and its scores."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.EvaluationScore"

    task_id: str = ""
    variant_id: str = ""
    project_id: str = ""
    protocol_run_id: str = ""
    git_url: str = _pydantic.Field(
        default="", description="Where the run's branch is: re-scoring reads it back from there."
    )
    branch: str = ""
    head_sha: str = ""
    resolved: bool = _pydantic.Field(
        default=False,
        description="Every FAIL_TO_PASS hidden test passes and every PASS_TO_PASS test still passes.",
    )
    f2p_passed: int = 0
    f2p_total: int = 0
    p2p_passed: int = 0
    p2p_total: int = 0
    qa_verdict: str = _pydantic.Field(default="", description="PASS, FAIL or none (QA never gave a verdict).")
    qa_label: str = ""
    qa_agrees: str = _pydantic.Field(default="", description='"yes", "no", or "" when QA gave no verdict.')
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    turns: int = _pydantic.Field(
        default=0, description="Agent calls (one `codex exec` turn each, re-asks included)."
    )
    guardrail_violations: int = 0
    wall_ms: int = 0
    run_status: str = _pydantic.Field(
        default="", description="How the run stopped (completed, blocked, planning_failed, ...)."
    )


class EvaluationSummary(_base.ContractModel):
    """A variant's totals and why it regressed against the baseline (nothing: it did not)."""

    PROTO_NAME: _typing.ClassVar[str] = "deksdenflow.common.v1.EvaluationSummary"

    variant_id: str = ""
    tasks: int = 0
    resolved: int = 0
    qa_verdicts: int = 0
    qa_agreements: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    turns: int = 0
    guardrail_violations: int = 0
    regressions: tuple[str, ...] = ()

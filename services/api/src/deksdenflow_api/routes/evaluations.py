"""Evaluations (``make eval``, ``python -m evals``): variants of prompts, models and engines run on fixture
tasks through the whole system, scored and compared with a baseline. The runner records each evaluation
here as events of an ``evaluation`` aggregate (admin only); anyone reads them back like runs — a project
token sees the evaluations that ran on its project, with that project's runs only."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from deksdenflow_core.aggregates import EVALUATION
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import evaluation as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.evaluation import (
    EvaluationScore,
    EvaluationSummary,
    EvaluationThresholds,
    EvaluationVariant,
)
from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deksdenflow_api.auth import PrincipalDep
from deksdenflow_api.commanding import CommandDep
from deksdenflow_api.errors import errors
from deksdenflow_api.reads import ReadContext, T, fetch_all, fetch_one

router = APIRouter(tags=["evaluations"])
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]  # the contract's int32 fields
Amount = Annotated[int, Field(ge=0, le=2**62)]  # its int64 fields
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # as the other routes' input models


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """No NUL or other C0 control (but tab and newlines) in any text, lists and maps included: the
        read model could not store it."""
        texts = (
            value if isinstance(value, list) else list(value.items()) if isinstance(value, dict) else [value]
        )
        for text in texts:
            for part in text if isinstance(text, tuple) else (text,):
                if isinstance(part, str) and _CONTROL.search(part):
                    raise ValueError("must not contain control characters (other than tab and newlines)")
        return value


class VariantIn(_In):
    id: str = Field(min_length=1, max_length=100)
    engine_id: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=200)
    prompt_versions: dict[str, str] = Field(default_factory=dict, description="prompt name -> version")
    expect_regression: bool = False
    label: str = Field(default="", max_length=500)


class ThresholdsIn(_In):
    resolved_drop: float = Field(default=0.0, ge=0, le=1)
    qa_drop: float = Field(default=0.0, ge=0, le=1)


class EvaluationCreate(_In):
    mode: Literal["replay", "author", "live"]
    baseline: str = Field(min_length=1, max_length=100)
    task_ids: list[str] = Field(min_length=1, max_length=500)
    variants: list[VariantIn] = Field(min_length=1, max_length=100)
    thresholds: ThresholdsIn = Field(default_factory=ThresholdsIn)
    scorer: str = Field(default="", max_length=200)


class ScoreIn(_In):
    task_id: str
    variant_id: str
    project_id: str = ""
    protocol_run_id: str = ""
    git_url: str = ""
    branch: str = ""
    head_sha: str = ""
    resolved: bool
    f2p_passed: Count
    f2p_total: Count
    p2p_passed: Count
    p2p_total: Count
    qa_verdict: Literal["PASS", "FAIL", "none"]
    qa_label: Literal["PASS", "FAIL"]
    qa_agrees: Literal["yes", "no", ""]
    input_tokens: Amount
    cached_input_tokens: Amount = 0
    output_tokens: Amount
    cost_micro_usd: Amount
    turns: Count
    guardrail_violations: Count
    wall_ms: Amount = 0
    run_status: str = ""


class SummaryIn(_In):
    variant_id: str
    tasks: Count
    resolved: Count
    qa_verdicts: Count
    qa_agreements: Count
    input_tokens: Amount
    output_tokens: Amount
    cost_micro_usd: Amount
    turns: Count
    guardrail_violations: Count
    regressions: list[str] = Field(default_factory=list)


class ConclusionIn(_In):
    summaries: list[SummaryIn]
    problems: list[str] = Field(default_factory=list)
    passed: bool


class RescoreIn(ConclusionIn):
    scorer: str = Field(default="", max_length=200)
    scores: list[ScoreIn]


class EvaluationPublic(BaseModel):
    id: str
    mode: str
    baseline: str
    status: str
    scorer: str
    task_ids: list[str]
    variants: list[dict[str, Any]]
    thresholds: dict[str, Any]
    passed: bool | None
    summaries: list[dict[str, Any]]
    problems: list[str]
    rescores: int
    started_at: datetime
    completed_at: datetime | None
    # the scores of its runs: the latest re-score's when it was re-scored, else the first
    scores: list[dict[str, Any]] = Field(default_factory=list)


class EvaluationsPublic(BaseModel):
    data: list[EvaluationPublic]
    count: int


class Accepted(BaseModel):
    id: str
    event_sequence: int = 0


def _score(s: ScoreIn) -> EvaluationScore:
    return EvaluationScore(**s.model_dump())


def _summary(s: SummaryIn) -> EvaluationSummary:
    return EvaluationSummary(**s.model_dump())


async def _run(commander: CommandDep, evaluation_id: str, command: Any) -> Accepted:
    commander.principal.require_admin()
    outcome = await commander.execute(EVALUATION, evaluation_id, command)
    events = outcome.appended.events
    return Accepted(id=evaluation_id, event_sequence=events[-1].stream_seq if events else 0)


@router.post("/evaluations", status_code=201, response_model=Accepted, responses=errors(401, 403, 422, 503))
async def start_evaluation(body: EvaluationCreate, commander: CommandDep) -> Accepted:
    """Begin an evaluation (``evaluation.started``); admin only."""
    evaluation_id = uuid.uuid4().hex
    command = cmd.StartEvaluation(
        evaluation_id=evaluation_id,
        mode=body.mode,
        baseline=body.baseline,
        task_ids=tuple(body.task_ids),
        variants=tuple(
            EvaluationVariant(
                id=v.id,
                engine_id=v.engine_id,
                model=v.model,
                prompt_versions=tuple(f"{n}@{ver}" for n, ver in sorted(v.prompt_versions.items())),
                expect_regression=v.expect_regression,
                label=v.label,
            )
            for v in body.variants
        ),
        thresholds=EvaluationThresholds(**body.thresholds.model_dump()),
        scorer=body.scorer,
    )
    return await _run(commander, evaluation_id, command)


@router.post(
    "/evaluations/{evaluation_id}/scores",
    response_model=Accepted,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def record_score(evaluation_id: Id, body: ScoreIn, commander: CommandDep) -> Accepted:
    """One run's scores (``evaluation.task_scored``); admin only."""
    return await _run(commander, evaluation_id, cmd.RecordEvaluationScore(score=_score(body)))


@router.post(
    "/evaluations/{evaluation_id}/complete",
    response_model=Accepted,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def complete_evaluation(evaluation_id: Id, body: ConclusionIn, commander: CommandDep) -> Accepted:
    """The conclusion: each variant's totals and regressions (``evaluation.completed``); admin only."""
    command = cmd.CompleteEvaluation(
        summaries=tuple(map(_summary, body.summaries)), problems=tuple(body.problems), passed=body.passed
    )
    return await _run(commander, evaluation_id, command)


@router.post(
    "/evaluations/{evaluation_id}/rescores",
    response_model=Accepted,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def rescore_evaluation(evaluation_id: Id, body: RescoreIn, commander: CommandDep) -> Accepted:
    """Scores of the stored runs by the current scorers (``evaluation.rescored``); admin only."""
    command = cmd.RescoreEvaluation(
        scorer=body.scorer,
        scores=tuple(map(_score, body.scores)),
        summaries=tuple(map(_summary, body.summaries)),
        problems=tuple(body.problems),
        passed=body.passed,
    )
    return await _run(commander, evaluation_id, command)


_COLUMNS = (
    "id, mode, baseline, status, scorer, task_ids, variants, thresholds, passed, summaries, problems, "
    "rescores, started_at, completed_at"
)


@router.get("/evaluations", response_model=EvaluationsPublic, responses=errors(401, 503))
async def list_evaluations(ctx: ReadContext, principal: PrincipalDep) -> EvaluationsPublic:
    """Evaluations, newest first (a project token: those that ran on its project)."""
    rows = await fetch_all(
        ctx,
        f"SELECT {_COLUMNS} FROM {T}.evaluations WHERE ($1::text IS NULL OR project_ids ? $1) "
        "ORDER BY started_at DESC LIMIT 200",
        principal.project_id,
    )
    data = [EvaluationPublic(**row) for row in rows]
    return EvaluationsPublic(data=data, count=len(data))


@router.get(
    "/evaluations/{evaluation_id}", response_model=EvaluationPublic, responses=errors(401, 403, 404, 503)
)
async def get_evaluation(evaluation_id: Id, ctx: ReadContext, principal: PrincipalDep) -> EvaluationPublic:
    """One evaluation with the scores of its runs (the latest re-score's, if any)."""
    scope = principal.project_id
    row = await fetch_one(
        ctx,
        f"SELECT {_COLUMNS} FROM {T}.evaluations WHERE id = $1 AND ($2::text IS NULL OR project_ids ? $2)",
        evaluation_id,
        scope,
        what=f"evaluation {evaluation_id}",
    )
    scores = await fetch_all(
        ctx,
        f"SELECT score FROM {T}.evaluation_scores WHERE evaluation_id = $1 AND rescore = $2 "
        "AND ($3::text IS NULL OR project_id = $3) ORDER BY variant_id, task_id",
        evaluation_id,
        row["rescores"],
        scope,
    )
    return EvaluationPublic(**row, scores=[s["score"] for s in scores])

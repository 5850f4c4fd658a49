"""The Evaluation aggregate: one evaluation of variants (prompt versions x model x engine) on fixture
tasks, its runs' scores and its conclusion, so that every evaluation and score is in the log like any run.

An evaluation is started once, scores each (task, variant) once while it runs, completes once; it may be
re-scored any number of times afterwards (a scorer changed: the stored runs are scored again, nothing of
the first scores is lost). Its runs are protocol runs of their own projects: an evaluation belongs to no
single project (``NO_PROJECT`` in its subjects).
"""

from __future__ import annotations

from typing import TypedDict, assert_never

from pydantic import BaseModel, ConfigDict

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import evaluation as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.evaluation import EvaluationScore
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import evaluation as ev
from deksdenflow_core.domain.context import DecisionContext, InvariantViolation
from deksdenflow_core.errors import IllegalTransition, InvalidCommand, NotFound

AGGREGATE_TYPE = "evaluation"
NO_PROJECT = "_"
MODES = ("replay", "author", "live")

EvaluationEvent = (
    ev.EvaluationStarted | ev.EvaluationTaskScored | ev.EvaluationCompleted | ev.EvaluationRescored
)
EvaluationCommand = (
    cmd.StartEvaluation | cmd.RecordEvaluationScore | cmd.CompleteEvaluation | cmd.RescoreEvaluation
)


class EvaluationState(BaseModel):
    """What a decision needs: whether it started, the runs it expects and has scored, whether it ended."""

    model_config = ConfigDict(frozen=True)

    evaluation_id: str
    started: ev.EvaluationStarted | None = None
    scored: tuple[tuple[str, str], ...] = ()  # (task id, variant id)
    completed: bool = False
    rescores: int = 0
    version: int = 0

    @classmethod
    def initial(cls, evaluation_id: str) -> EvaluationState:
        return cls(evaluation_id=evaluation_id)

    @property
    def status(self) -> str:
        return "completed" if self.completed else "running" if self.started else "new"

    @property
    def expected(self) -> set[tuple[str, str]]:
        s = self.started
        return {(t, v.id) for t in s.task_ids for v in s.variants} if s else set()


class EvaluationUpdate(TypedDict, total=False):
    started: ev.EvaluationStarted
    scored: tuple[tuple[str, str], ...]
    completed: bool
    rescores: int


def _check_score(state: EvaluationState, score: EvaluationScore | None) -> EvaluationScore:
    if score is None:
        raise InvalidCommand("a score is required", field="score")
    if (score.task_id, score.variant_id) not in state.expected:
        raise InvalidCommand(
            f"task {score.task_id!r} with variant {score.variant_id!r} is not part of this evaluation",
            field="score",
        )
    if score.qa_agrees not in ("yes", "no", ""):
        raise InvalidCommand("qa_agrees is yes, no or empty (no verdict)", field="score.qa_agrees")
    if min(score.f2p_passed, score.p2p_passed, score.turns, score.input_tokens, score.output_tokens) < 0:
        raise InvalidCommand("counts cannot be negative", field="score")
    return score


def decide_evaluation(
    state: EvaluationState, command: EvaluationCommand, ctx: DecisionContext
) -> list[EvaluationEvent]:
    del ctx
    match command:
        case cmd.StartEvaluation():
            if state.started is not None:
                return []  # a retried start: already recorded
            if command.evaluation_id != state.evaluation_id:
                raise InvalidCommand("the evaluation id must be the aggregate's", field="evaluation_id")
            if command.mode not in MODES:
                raise InvalidCommand(f"mode must be one of {', '.join(MODES)}", field="mode")
            ids = [v.id for v in command.variants]
            if not ids or len(set(ids)) != len(ids):
                raise InvalidCommand("variants must be given, with unique ids", field="variants")
            if command.baseline not in ids:
                raise InvalidCommand(f"baseline {command.baseline!r} is not a variant", field="baseline")
            if not command.task_ids or len(set(command.task_ids)) != len(command.task_ids):
                raise InvalidCommand("tasks must be given, each once", field="task_ids")
            return [ev.EvaluationStarted(**command.model_dump())]
        case cmd.RecordEvaluationScore():
            _require_started(state)
            if state.completed:
                raise IllegalTransition(
                    "the evaluation is completed: re-score it instead", current_status="completed"
                )
            score = _check_score(state, command.score)
            if (score.task_id, score.variant_id) in state.scored:
                return []  # scored once; a retry changes nothing
            return [ev.EvaluationTaskScored(score=score)]
        case cmd.CompleteEvaluation():
            _require_started(state)
            if state.completed:
                return []
            missing = sorted(state.expected - set(state.scored))
            if missing:
                raise IllegalTransition(
                    f"{len(missing)} run(s) not scored yet, such as {missing[0]}", current_status="running"
                )
            return [ev.EvaluationCompleted(**command.model_dump())]
        case cmd.RescoreEvaluation():
            _require_started(state)
            if not state.completed:
                raise IllegalTransition("only a completed evaluation is re-scored", current_status="running")
            for score in command.scores:
                _check_score(state, score)
            if {(s.task_id, s.variant_id) for s in command.scores} != state.expected:
                raise InvalidCommand("a re-score scores every run of the evaluation", field="scores")
            return [ev.EvaluationRescored(**command.model_dump())]
        case _:
            assert_never(command)


def _require_started(state: EvaluationState) -> None:
    if state.started is None:
        raise NotFound(f"evaluation {state.evaluation_id} was never started")


def evolve_evaluation(state: EvaluationState, event: EvaluationEvent) -> EvaluationState:
    match event:
        case ev.EvaluationStarted():
            if state.started is not None:
                raise InvariantViolation("evaluation started twice")
            update: EvaluationUpdate = {"started": event}
        case ev.EvaluationTaskScored():
            if event.score is None:
                raise InvariantViolation("evaluation.task_scored without a score")
            update = {"scored": (*state.scored, (event.score.task_id, event.score.variant_id))}
        case ev.EvaluationCompleted():
            update = {"completed": True}
        case ev.EvaluationRescored():
            update = {"rescores": state.rescores + 1}
        case _:
            assert_never(event)
    return state.model_copy(update={**update, "version": state.version + 1})

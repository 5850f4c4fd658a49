"""The evaluation aggregate's rules: started once, each run scored once and only runs of the evaluation,
completed only when every run is scored, re-scored only when completed and then for every run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import evaluation as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.evaluation import (
    EvaluationScore,
    EvaluationVariant,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import evaluation as ev
from deksdenflow_core.domain.context import DecisionContext, DeterministicIds
from deksdenflow_core.domain.evaluation import (
    EvaluationCommand,
    EvaluationState,
    decide_evaluation,
    evolve_evaluation,
)
from deksdenflow_core.errors import IllegalTransition, InvalidCommand, NotFound

CTX = DecisionContext(now=datetime(2026, 1, 1, tzinfo=UTC), new_id=DeterministicIds("t"))
START = cmd.StartEvaluation(
    evaluation_id="e1",
    mode="replay",
    baseline="base",
    task_ids=("t1", "t2"),
    variants=(EvaluationVariant(id="base", engine_id="codex", model="m"), EvaluationVariant(id="worse")),
)


def score(task: str, variant: str, **fields: object) -> EvaluationScore:
    return EvaluationScore(task_id=task, variant_id=variant, qa_verdict="PASS", qa_agrees="yes", **fields)


def apply(state: EvaluationState, command: EvaluationCommand) -> EvaluationState:
    for event in decide_evaluation(state, command, CTX):
        state = evolve_evaluation(state, event)
    return state


def started() -> EvaluationState:
    return apply(EvaluationState.initial("e1"), START)


def test_an_evaluation_is_started_once_with_its_baseline_among_its_variants() -> None:
    state = started()
    assert state.status == "running"
    assert state.expected == {("t1", "base"), ("t2", "base"), ("t1", "worse"), ("t2", "worse")}
    assert decide_evaluation(state, START, CTX) == []
    with pytest.raises(InvalidCommand, match="baseline"):
        decide_evaluation(EvaluationState.initial("e1"), START.model_copy(update={"baseline": "x"}), CTX)
    with pytest.raises(InvalidCommand, match="mode"):
        decide_evaluation(EvaluationState.initial("e1"), START.model_copy(update={"mode": "guess"}), CTX)


def test_each_run_is_scored_once_and_only_runs_of_the_evaluation() -> None:
    state = started()
    [event] = decide_evaluation(state, cmd.RecordEvaluationScore(score=score("t1", "base")), CTX)
    assert isinstance(event, ev.EvaluationTaskScored)
    state = evolve_evaluation(state, event)
    assert decide_evaluation(state, cmd.RecordEvaluationScore(score=score("t1", "base")), CTX) == []
    with pytest.raises(InvalidCommand, match="not part of this evaluation"):
        decide_evaluation(state, cmd.RecordEvaluationScore(score=score("t9", "base")), CTX)
    with pytest.raises(NotFound):
        decide_evaluation(
            EvaluationState.initial("e2"), cmd.RecordEvaluationScore(score=score("t1", "base")), CTX
        )


def test_it_completes_when_every_run_is_scored_and_is_then_re_scored_whole() -> None:
    state = started()
    with pytest.raises(IllegalTransition, match="not scored yet"):
        decide_evaluation(state, cmd.CompleteEvaluation(passed=True), CTX)
    with pytest.raises(IllegalTransition, match="only a completed"):
        decide_evaluation(state, cmd.RescoreEvaluation(), CTX)
    runs = [score(t, v) for t in ("t1", "t2") for v in ("base", "worse")]
    for s in runs:
        state = apply(state, cmd.RecordEvaluationScore(score=s))
    state = apply(state, cmd.CompleteEvaluation(passed=False, problems=("worse regressed",)))
    assert state.status == "completed"
    with pytest.raises(IllegalTransition, match="re-score"):
        decide_evaluation(state, cmd.RecordEvaluationScore(score=runs[0]), CTX)
    with pytest.raises(InvalidCommand, match="every run"):
        decide_evaluation(state, cmd.RescoreEvaluation(scores=tuple(runs[:2])), CTX)
    state = apply(state, cmd.RescoreEvaluation(scorer="tests/2", scores=tuple(runs), passed=True))
    state = apply(state, cmd.RescoreEvaluation(scorer="tests/3", scores=tuple(runs), passed=True))
    assert state.rescores == 2

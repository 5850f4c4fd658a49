"""``evolve``'s updates are typed: their declarations match the states' fields, and a misspelt field is a
type error (mypy, in ``make static``), not a silent new attribute of the next state."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from deksdenflow_core.domain.project import ProjectState, ProjectStatus, ProjectUpdate
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.domain.protocol_run.state import RunStatus, StepState
from deksdenflow_core.domain.protocol_run.updates import RunUpdate, StepUpdate
from deksdenflow_core.domain.webhook import WebhookState, WebhookUpdate
from pydantic import BaseModel

# Fields set once, when the state or the step is made, and never by an update.
_STEP_PLAN_FIELDS = {
    "step_run_id",
    "index",
    "name",
    "step_type",
    "engine_id",
    "model",
    "qa_policy",
    "qa_engine_id",
    "qa_model",
    "file_path",
    "policies",
    "prompt",
    "queued_by",
    "trigger_depth",
    "trigger_max_depth",
    "run_order",
    "parallel_group",
    "fallbacks",
    "critical",
}


@pytest.mark.parametrize(
    ("update", "model", "fixed"),
    [
        (RunUpdate, ProtocolRunState, {"protocol_run_id"}),
        (StepUpdate, StepState, _STEP_PLAN_FIELDS),
        (ProjectUpdate, ProjectState, {"project_id"}),
        (WebhookUpdate, WebhookState, {"webhook_id"}),
    ],
)
def test_every_updatable_field_of_a_state_is_declared_with_its_type(
    update: Any, model: type[BaseModel], fixed: set[str]
) -> None:
    declared = get_type_hints(update)
    assert set(declared) == set(model.model_fields) - fixed
    for name, hint in declared.items():
        assert hint == model.model_fields[name].annotation, name


def _misspelt_fields_do_not_type_check() -> None:
    """Never called: mypy --strict reads it. Each ignore below is needed (``warn_unused_ignores`` fails
    ``make static`` the day one of these lines type-checks), which is the proof that updates are typed."""
    run: RunUpdate = {"stauts": RunStatus.RUNNING}  # type: ignore[typeddict-unknown-key]
    step: StepUpdate = {"excuting": False}  # type: ignore[typeddict-unknown-key]
    wrong_type: StepUpdate = {"status": RunStatus.RUNNING}  # type: ignore[typeddict-item]
    project: ProjectUpdate = {"staus": ProjectStatus.READY}  # type: ignore[typeddict-unknown-key]
    del run, step, wrong_type, project

"""The agent's directive as the worker reads it (validated, never taken as it is), and an imported plan's
policies, engines and models reaching the steps planning records."""

from __future__ import annotations

import json

import pytest
from deksdenflow_codex_worker.directive import parse_directive, trailer_value
from deksdenflow_codex_worker.planning import imported_plan
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    AgentDirective,
    DirectiveAction,
    ImportedPlan,
    ImportedStepFile,
    StepCheckpointPolicy,
    StepPolicies,
)

WHERE = ".deksdenflow/directive.json"


def test_a_valid_directive_is_read_with_its_fields() -> None:
    text = json.dumps({"action": "trigger", "reason": "needs review", "agent": "reviewer", "prompt": "Look."})
    read = parse_directive(text, WHERE)
    assert read.error == ""
    assert read.directive == AgentDirective(
        action=DirectiveAction.TRIGGER, reason="needs review", agent="reviewer", prompt="Look."
    )


def test_a_directive_read_back_from_its_commit_trailer_is_the_same() -> None:
    said = AgentDirective(action=DirectiveAction.LOOP, reason="tests red\non two lines")
    value = trailer_value(said)
    assert "\n" not in value
    assert parse_directive(value, "trailer").directive == said


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", f"{WHERE}: not JSON"),
        (json.dumps({"reason": "no action"}), f"{WHERE}: does not match agent-directive: (root): 'action'"),
        (json.dumps({"action": "explode"}), f"{WHERE}: does not match agent-directive: action:"),
        (json.dumps({"action": "loop", "reason": 3}), f"{WHERE}: does not match agent-directive: reason:"),
        (json.dumps({"action": "trigger", "agent": "../../x"}), "agent-directive: agent:"),
    ],
)
def test_an_invalid_directive_is_an_error_naming_file_and_field(text: str, error: str) -> None:
    read = parse_directive(text, WHERE)
    assert read.directive is None
    assert error in read.error


def test_an_imported_plans_policies_engines_and_models_reach_its_steps() -> None:
    checkpoint = StepPolicies(checkpoint=StepCheckpointPolicy(reason="look"))
    plan = ImportedPlan(
        source="codemachine",
        steps=[
            ImportedStepFile(filename="00-setup.md", content="# Setup\n"),
            ImportedStepFile(
                filename="01-build.md",
                content="# Build\n",
                policies=checkpoint,
                engine_id="claude-code",
                model="opus",
                labels=["builder"],
            ),
        ],
    )
    steps = imported_plan(plan, "Task").step_plans(".protocols/0001-task")
    assert steps[0].policies is None
    assert (steps[1].policies, steps[1].engine_id, steps[1].model, steps[1].labels) == (
        checkpoint,
        "claude-code",
        "opus",
        ("builder",),
    )

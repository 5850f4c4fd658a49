"""A spec checked before anything is made of it: a plan (its steps, as a planner's plan gives them) or an
import (a spec-kit feature folder, an OpenSpec change), with the steps it would be and every problem by
file, line and field — the rules a plan is accepted by included, so what passes here is what a run
accepts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ConfigDict

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, StepPlan, StepType
from deksdenflow_core.domain.protocol_run import plan
from deksdenflow_core.specs.model import ImportedProtocol, SpecProblem

# "step 1: step_type is required", "step 1 (01-build.md): policies.loop.back_to 'x' must name …"
_ABOUT_STEP = re.compile(r"^step (?P<index>\d+)(?: \([^)]*\))?: (?P<message>.*)$", re.DOTALL)


class StepPlanIn(StepPlan):
    """A step of a plan as the contract has it (``StepPlan``'s JSON), read from a person or a file: a
    field the contract does not have is refused, not dropped (a misspelt field is a mistake to name)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SpecCheck:
    kind: str
    title: str
    steps: tuple[StepPlan, ...]
    problems: tuple[SpecProblem, ...]
    # Phases (sections) of an import left out as done.
    skipped: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems


def plan_problems(steps: Sequence[StepPlan], file: str) -> list[SpecProblem]:
    """``plan.plan_problems`` with a place: a problem of one step names its file and ``steps[i]``."""
    names = {s.index: s.name for s in steps}
    found: list[SpecProblem] = []
    for problem in plan.plan_problems(tuple(steps)):
        about = _ABOUT_STEP.match(problem)
        if about is None:
            found.append(SpecProblem(file, 0, "steps", problem))
            continue
        index, message = int(about["index"]), about["message"]
        # a message that starts with the step's field names it: steps[1].policies.loop.back_to
        named = message.split(" ", 1)[0].rstrip(":")
        field = f"steps[{index}]" + (f".{named}" if named.split(".")[0] in StepPlan.model_fields else "")
        found.append(SpecProblem(names.get(index) or file, 0, field, message))
    return found


def check_plan(steps: Sequence[StepPlan]) -> SpecCheck:
    """A plan's steps (``StepPlan``) as a run would accept them, in index order."""
    ordered = tuple(sorted(steps, key=lambda s: s.index))
    return SpecCheck("plan", "", ordered, tuple(plan_problems(ordered, "plan")))


def imported_steps(imported: ImportedProtocol) -> tuple[StepPlan, ...]:
    """The steps an import plans as: its step files in order, the first the setup step when there are
    several (as a planner's plan has it), QA full, with what the spec gives them (labels, policies, engine
    and model, parallel group)."""
    count = len(imported.steps)
    return tuple(
        StepPlan(
            index=i,
            name=s.filename,
            step_type=StepType.SETUP if i == 0 and count > 1 else StepType.WORK,
            engine_id=s.engine_id,
            model=s.model,
            qa_policy=QaPolicy.FULL,
            policies=s.policies,
            labels=s.labels,
            parallel_group=s.parallel_group,
        )
        for i, s in enumerate(imported.steps)
    )


def check_import(kind: str, imported: ImportedProtocol, main_file: str) -> SpecCheck:
    """An import's problems (its files'); when its files have none, those of the plan it makes, named
    after its main file (a plan made of files with problems says nothing more)."""
    steps = imported_steps(imported)
    problems = imported.problems or tuple(plan_problems(steps, main_file))
    return SpecCheck(kind, imported.title, steps, problems, imported.skipped)

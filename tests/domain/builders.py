"""Small builders for domain tests: states reached through real decisions, never hand-made."""

from __future__ import annotations

from datetime import UTC, datetime

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    QaPolicy,
    RunMode,
    RunPolicy,
    StepPlan,
    StepType,
)
from deksdenflow_core.domain.context import DecisionContext, DeterministicIds
from deksdenflow_core.domain.naming import ProtocolCatalog, decide_create_protocol
from deksdenflow_core.domain.project import ProjectState, decide_project, evolve_project
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunEvent,
    ProtocolRunState,
    decide_protocol_run,
    evolve_protocol_run,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ctx(seed: str = "seed") -> DecisionContext:
    return DecisionContext(now=NOW, new_id=DeterministicIds(seed))


# Most rule tests drive a run by hand, as a client of a manual project does; autopilot tests pass a policy.
MANUAL = RunPolicy(mode=RunMode.MANUAL)


def registered_project(project_id: str = "p1", run_policy: RunPolicy | None = MANUAL) -> ProjectState:
    state = ProjectState.initial(project_id)
    register = pcmd.RegisterProject(name="demo", git_url="file:///tmp/demo.git", run_policy=run_policy)
    for e in decide_project(state, register, ctx()):
        state = evolve_project(state, e)
    return state


def new_run(
    task: str = "Add login page", run_policy: RunPolicy | None = MANUAL, override: RunPolicy | None = None
) -> ProtocolRunState:
    created = decide_create_protocol(
        registered_project(run_policy=run_policy),
        ProtocolCatalog(),
        cmd.CreateProtocolRun(task_name=task, run_policy=override),
        ctx(),
    )
    return evolve_protocol_run(ProtocolRunState.initial(created.protocol_run_id), created)


def apply(state: ProtocolRunState, command: ProtocolRunCommand, seed: str = "s") -> ProtocolRunState:
    events: list[ProtocolRunEvent] = decide_protocol_run(state, command, ctx(seed))
    for e in events:
        state = evolve_protocol_run(state, e)
    return state


def plan_steps(n: int = 3, qa: QaPolicy = QaPolicy.FULL) -> tuple[StepPlan, ...]:
    return tuple(
        StepPlan(
            index=i,
            name=f"{i:02d}-{'setup' if i == 0 else f'work-{i}'}.md",
            step_type=StepType.SETUP if i == 0 else StepType.WORK,
            qa_policy=qa,
        )
        for i in range(n)
    )


def planned_run(n: int = 3, qa: QaPolicy = QaPolicy.FULL) -> ProtocolRunState:
    state = apply(new_run(), cmd.StartProtocolRun())
    return apply(state, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(n, qa)))

"""A realistic pre-filled log: protocol runs that go through planning, 10 steps with QA, completion."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from datetime import UTC, datetime

from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    Phase,
    QaPolicy,
    QaVerdict,
    StepPlan,
    StepType,
    TokenUsage,
)
from deksdenflow_core.domain.context import DecisionContext, DeterministicIds
from deksdenflow_core.domain.naming import ProtocolCatalog, decide_create_protocol
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunState,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.eventstore import AppendMeta, AppendResult, JetStreamEventStore, Position

STEPS = 10


def run_events(project: ProjectState, number: int) -> list[ContractModel]:
    """Every event of one protocol run, produced by the real ``decide`` (so the log is legal)."""
    return [event for decision in run_decisions(project, number) for event in decision]


def run_decisions(project: ProjectState, number: int) -> list[list[ContractModel]]:
    """The decisions of one protocol run (the events of each command), produced by the real ``decide``."""
    ctx = DecisionContext(now=datetime.now(UTC), new_id=DeterministicIds(uuid.uuid4().hex))
    created = decide_create_protocol(
        project,
        ProtocolCatalog(frozenset(range(1, number))),
        cmd.CreateProtocolRun(task_name=f"bench task {number}"),
        ctx,
    )
    state = evolve_protocol_run(ProtocolRunState.initial(created.protocol_run_id), created)
    decisions: list[list[ContractModel]] = [[created]]

    def do(command: ProtocolRunCommand) -> None:
        nonlocal state
        decision = decide_protocol_run(state, command, ctx)
        for e in decision:
            state = evolve_protocol_run(state, e)
        decisions.append(list(decision))

    plan = tuple(
        StepPlan(
            index=i,
            name=f"{i:02d}-step.md",
            step_type=StepType.SETUP if i == 0 else StepType.WORK,
            qa_policy=QaPolicy.FULL,
        )
        for i in range(STEPS)
    )
    do(cmd.StartProtocolRun())
    do(cmd.RecordPlanningCompleted(attempt=1, steps=plan))
    for step in list(state.steps):
        sid = step.step_run_id
        do(cmd.RunNextStep())
        do(cmd.RecordStepExecutionStarted(step_run_id=sid, worker_id="bench"))
        do(
            cmd.RecordUsage(
                call_id=f"{sid}-exec",
                step_run_id=sid,
                phase=Phase.EXEC,
                usage=TokenUsage(input_tokens=1200, output_tokens=300),
                cost_micro_usd=900,
            )
        )
        do(
            cmd.RecordStepExecutionCompleted(
                step_run_id=sid, summary="done", commit_sha=uuid.uuid4().hex[:12], auto_qa=True
            )
        )
        do(cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1, verdict=QaVerdict.PASS))
    return decisions


async def append_with_retry(
    store: JetStreamEventStore,
    project_id: str,
    run_id: str,
    events: list[ContractModel],
    expected: Position,
    meta: AppendMeta,
) -> AppendResult:
    """Append, again if the acknowledgement got lost (a loaded 2-core machine can delay it past the
    timeout): the same causation gives the same event ids, so a batch stored the first time is
    recognised as a duplicate rather than stored twice."""
    append = functools.partial(
        store.append,
        project_id=project_id,
        aggregate_type="protocol_run",
        aggregate_id=run_id,
        events=events,
        expected=expected,
        meta=meta,
    )
    for _ in range(2):
        with contextlib.suppress(InfrastructureError):
            return await append()
    return await append()


async def prefill(store: JetStreamEventStore, *, target_events: int, concurrency: int = 16) -> int:
    """Append runs until at least ``target_events`` events are in the log; return the count."""
    project = ProjectState(
        project_id=uuid.uuid4().hex, exists=True, name="bench", git_url="file:///bench.git"
    )
    per_run = len(run_events(project, 1))
    runs = -(-target_events // per_run)
    semaphore = asyncio.Semaphore(concurrency)

    async def append_run(number: int) -> int:
        events = run_events(project, number)
        run_id = events[0].protocol_run_id  # type: ignore[attr-defined]
        async with semaphore:
            position = Position()
            meta = AppendMeta(source="bench", actor="bench", causation_id=run_id, correlation_id=run_id)
            for start in range(0, len(events), 100):
                chunk = events[start : start + 100]
                chunk_meta = AppendMeta(**{**meta.__dict__, "causation_id": f"{run_id}/{start}"})
                result = await append_with_retry(
                    store, project.project_id, run_id, chunk, position, chunk_meta
                )
                last = result.events[-1]
                position = Position(last_seq=last.stream_seq, version=last.envelope.aggregate_version)
        return len(events)

    counts = await asyncio.gather(*(append_run(n) for n in range(1, runs + 1)))
    return sum(counts)

"""Load → decide → append through the repository, against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaVerdict, RunMode, RunPolicy
from deksdenflow_core.domain.protocol_run import RunStatus, StepStatus
from deksdenflow_core.errors import ConcurrencyConflict, IllegalTransition
from deksdenflow_core.eventstore import AppendMeta

from tests.domain.builders import plan_steps


def meta(actor: str = "user:test") -> AppendMeta:
    request = str(uuid.uuid4())
    return AppendMeta(source="tests", actor=actor, causation_id=request, correlation_id=request)


async def _project(repo: Repository) -> str:
    project_id = uuid.uuid4().hex
    await repo.execute(
        PROJECT,
        project_id,
        # runs driven by hand here
        pcmd.RegisterProject(
            name="demo", git_url="file:///demo.git", run_policy=RunPolicy(mode=RunMode.MANUAL)
        ),
        meta(),
    )
    return project_id


async def test_a_protocol_run_loads_back_to_the_state_its_commands_produced(repo: Repository) -> None:
    project_id = await _project(repo)
    created = await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="Add login"), meta())
    run_id = created.state.protocol_run_id
    assert created.state.protocol_name == "0001-add-login"
    outcome = await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
    outcome = await repo.execute(
        PROTOCOL_RUN,
        run_id,
        cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(3)),
        meta("worker:codex"),
    )
    for step in outcome.state.steps[:2]:
        await repo.execute(PROTOCOL_RUN, run_id, cmd.RunNextStep(), meta())
        await repo.execute(
            PROTOCOL_RUN,
            run_id,
            cmd.RecordStepExecutionCompleted(
                step_run_id=step.step_run_id, commit_sha=f"sha-{step.index}", auto_qa=True
            ),
            meta("worker:codex"),
        )
        outcome = await repo.execute(
            PROTOCOL_RUN,
            run_id,
            cmd.RecordQaVerdict(step_run_id=step.step_run_id, qa_attempt=1, verdict=QaVerdict.PASS),
            meta("worker:codex"),
        )
    outcome = await repo.execute(PROTOCOL_RUN, run_id, cmd.PauseProtocolRun(), meta())
    loaded = await repo.load(PROTOCOL_RUN, run_id)
    assert loaded.state == outcome.state
    assert loaded.state.status is RunStatus.PAUSED
    assert [s.status for s in loaded.state.steps] == [
        StepStatus.COMPLETED,
        StepStatus.COMPLETED,
        StepStatus.PENDING,
    ]
    assert loaded.position.version == loaded.state.version


async def test_illegal_commands_append_nothing(repo: Repository) -> None:
    project_id = await _project(repo)
    created = await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="x"), meta())
    before = await repo.store.stream_last_seq()
    with pytest.raises(IllegalTransition) as info:
        await repo.execute(PROTOCOL_RUN, created.state.protocol_run_id, cmd.ResumeProtocolRun(), meta())
    assert info.value.current_status == "pending"
    assert await repo.store.stream_last_seq() == before


async def test_concurrent_creations_never_share_a_number(repo: Repository) -> None:
    project_id = await _project(repo)

    async def create(i: int) -> str | None:
        try:
            outcome = await repo.create_protocol_run(
                project_id, cmd.CreateProtocolRun(task_name=f"task {i}"), meta(), redecide=20
            )
        except ConcurrencyConflict:
            return None
        return outcome.state.protocol_name

    names = [n for n in await asyncio.gather(*(create(i) for i in range(10))) if n]
    numbers = sorted(int(n[:4]) for n in names)
    assert numbers == list(range(1, len(names) + 1)), names
    assert len(names) >= 2
    catalog, _ = await repo.catalog(project_id)
    assert catalog.numbers == frozenset(numbers)


async def test_concurrent_commands_on_one_run_are_decided_on_fresh_state(repo: Repository) -> None:
    project_id = await _project(repo)
    run_id = (
        await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="x"), meta())
    ).state.protocol_run_id

    async def pause() -> str:
        try:
            await repo.execute(PROTOCOL_RUN, run_id, cmd.PauseProtocolRun(), meta(), redecide=5)
        except IllegalTransition:
            return "refused"
        except ConcurrencyConflict:
            return "conflict"
        return "paused"

    results = await asyncio.gather(*(pause() for _ in range(6)))
    # Exactly one pause wins; the others see the paused state on re-decide (or lose the race outright).
    assert results.count("paused") == 1
    loaded = await repo.load(PROTOCOL_RUN, run_id)
    assert [e for e in loaded.state.model_dump() if e == "status"]
    assert loaded.state.status is RunStatus.PAUSED
    assert loaded.position.version == 2


async def test_replicas_with_stale_caches_decide_on_the_logs_state(repo: Repository) -> None:
    other = Repository(repo.store)  # a second API replica, with a cache of its own
    project_id = await _project(repo)
    run_id = (
        await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="x"), meta())
    ).state.protocol_run_id
    await other.load(PROTOCOL_RUN, run_id)  # other caches the run as pending
    await repo.execute(PROTOCOL_RUN, run_id, cmd.PauseProtocolRun(), meta())
    # other's cache says "pending", where resume is illegal: it must ask the log before refusing.
    resumed = await other.execute(PROTOCOL_RUN, run_id, cmd.ResumeProtocolRun(), meta())
    assert resumed.state.status is RunStatus.PENDING
    # repo's cache says "paused": its resume appends at a stale position, is refused, and is re-decided.
    with pytest.raises(IllegalTransition) as refused:
        await repo.execute(PROTOCOL_RUN, run_id, cmd.ResumeProtocolRun(), meta())
    assert refused.value.current_status == "pending"
    loaded = await Repository(repo.store).load(PROTOCOL_RUN, run_id)
    assert loaded.state.status is RunStatus.PENDING
    assert loaded.position.version == 3


async def test_a_stale_cache_never_turns_a_result_into_a_no_op(repo: Repository) -> None:
    worker = Repository(repo.store)  # a worker replica that cached the run before the API changed it
    project_id = await _project(repo)
    run_id = (
        await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="x"), meta())
    ).state.protocol_run_id
    await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
    planned = await worker.execute(
        PROTOCOL_RUN, run_id, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(2)), meta()
    )
    step = planned.state.steps[0].step_run_id
    await repo.execute(PROTOCOL_RUN, run_id, cmd.RunNextStep(), meta())
    # On the worker's cached state the step is pending, where a completion would be a stale no-op.
    done = await worker.execute(
        PROTOCOL_RUN, run_id, cmd.RecordStepExecutionCompleted(step_run_id=step), meta()
    )
    assert [e.envelope.type for e in done.appended.events] == ["protocol_run.step_execution_completed"]
    assert done.state.steps[0].status is StepStatus.NEEDS_QA


async def test_a_creation_does_not_read_the_log_first_and_still_finds_an_existing_aggregate(
    repo: Repository,
) -> None:
    """``new=True`` decides on the initial state without loading (a made-up id has no events); if the id
    is taken after all, the conditional append conflicts and the command is decided on what is there."""
    project_id = uuid.uuid4().hex
    register = pcmd.RegisterProject(name="p", git_url="file:///p.git")
    first = await repo.execute_many(PROJECT, project_id, [register], meta(), new=True)
    assert [e.stream_seq for e in first.appended.events] == [1]
    # Another API process (no cache of it) creating the same id: refused as a duplicate registration.
    other = Repository(repo.store)
    with pytest.raises(IllegalTransition):
        await other.execute_many(PROJECT, project_id, [register], meta(), new=True)
    assert await repo.store.stream_last_seq() == 1, "nothing written twice"

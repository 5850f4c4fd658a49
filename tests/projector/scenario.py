"""A realistic stream of commands through the repository: projects, runs, steps, QA, CI, usage, PRs."""

from __future__ import annotations

import uuid

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    CiStatus,
    Phase,
    QaVerdict,
    TokenUsage,
)
from deksdenflow_core.eventstore import AppendMeta

from tests.domain.builders import MANUAL, plan_steps


def meta(actor: str = "user:test") -> AppendMeta:
    request = str(uuid.uuid4())
    return AppendMeta(source="tests", actor=actor, causation_id=request, correlation_id=request)


async def drive(repo: Repository, *, projects: int = 2, runs_per_project: int = 2) -> list[str]:
    """Create projects and runs and move them through most of the lifecycle; return the run ids."""
    run_ids: list[str] = []
    for p in range(projects):
        project_id = uuid.uuid4().hex
        await repo.execute(
            PROJECT,
            project_id,
            pcmd.RegisterProject(name=f"p{p}", git_url=f"file:///p{p}.git", run_policy=MANUAL),
            meta(),
        )
        await repo.execute(
            PROJECT, project_id, pcmd.IssueProjectToken(token_id=f"t{p}", token_hash=f"{p:064x}"), meta()
        )
        for r in range(runs_per_project):
            run_id = (
                await repo.create_protocol_run(
                    project_id, cmd.CreateProtocolRun(task_name=f"task {r}"), meta()
                )
            ).state.protocol_run_id
            run_ids.append(run_id)
            await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
            state = (
                await repo.execute(
                    PROTOCOL_RUN,
                    run_id,
                    cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(3)),
                    meta("worker:codex"),
                )
            ).state
            first = state.steps[0].step_run_id
            await repo.execute(PROTOCOL_RUN, run_id, cmd.RunNextStep(), meta())
            await repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RecordStepExecutionStarted(step_run_id=first, worker_id="w1"),
                meta("worker:codex"),
            )
            await repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RecordUsage(
                    call_id=f"{run_id}-c1",
                    step_run_id=first,
                    phase=Phase.EXEC,
                    usage=TokenUsage(input_tokens=100, output_tokens=20),
                    cost_micro_usd=1500,
                ),
                meta("worker:codex"),
            )
            await repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RecordStepExecutionCompleted(
                    step_run_id=first,
                    commit_sha=f"{run_id}-sha",
                    auto_qa=True,
                    changed_files=("src/app.py", "README.md"),
                ),
                meta("worker:codex"),
            )
            await repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RecordQaVerdict(
                    step_run_id=first, qa_attempt=1, verdict=QaVerdict.PASS if r % 2 == 0 else QaVerdict.FAIL
                ),
                meta("worker:codex"),
            )
            await repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RecordCiReport(
                    provider=CiProvider.GITHUB,
                    status=CiStatus.FAILURE,
                    raw_status="timed_out",
                    head_sha=f"{run_id}-sha",
                    delivery_id=f"{run_id}-d1",
                ),
                meta("webhook:github"),
            )
            if r % 2:
                await repo.execute(PROTOCOL_RUN, run_id, cmd.CancelProtocolRun(reason="enough"), meta())
    return run_ids


async def replan(repo: Repository) -> str:
    """A run planned twice: the second plan replaces the steps of the first (their rows must go)."""
    project_id = uuid.uuid4().hex
    await repo.execute(
        PROJECT,
        project_id,
        pcmd.RegisterProject(name="re", git_url="file:///re.git", run_policy=MANUAL),
        meta(),
    )
    run_id = (
        await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="replan"), meta())
    ).state.protocol_run_id
    for attempt, steps in ((1, 3), (2, 2)):
        await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
        await repo.execute(
            PROTOCOL_RUN,
            run_id,
            cmd.RecordPlanningCompleted(attempt=attempt, steps=plan_steps(steps)),
            meta("worker:codex"),
        )
    return run_id


async def many_ids(repo: Repository, calls: int = 16) -> str:
    """A run with many usage calls and CI deliveries: ids its state keeps as sets."""
    project_id = uuid.uuid4().hex
    await repo.execute(
        PROJECT,
        project_id,
        pcmd.RegisterProject(name="ids", git_url="file:///ids.git", run_policy=MANUAL),
        meta(),
    )
    run_id = (
        await repo.create_protocol_run(project_id, cmd.CreateProtocolRun(task_name="ids"), meta())
    ).state.protocol_run_id
    await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
    for i in range(calls):
        usage = cmd.RecordUsage(call_id=f"{run_id}-call-{i}", phase=Phase.PLANNING, cost_micro_usd=i)
        await repo.execute(PROTOCOL_RUN, run_id, usage, meta("worker:codex"))
        report = cmd.RecordCiReport(
            provider=CiProvider.GITHUB,
            status=CiStatus.RUNNING,
            head_sha=f"unknown-{i}",
            delivery_id=f"{run_id}-delivery-{i}",
        )
        await repo.execute(PROTOCOL_RUN, run_id, report, meta("webhook:github"))
    return run_id

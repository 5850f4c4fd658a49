"""What every job of the codex worker does around its agent: take the request (still current?), watch
the run while the agent works, check out the protocol branch, push, and record results in the log.

A job that finds its work no longer wanted raises :class:`~deksdenflow_core.errors.WorkNotCurrent`; the
dispatcher acknowledges it and logs it. Nothing here settles a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import (
    MAX_PUSH_ANCESTORS,
    ProtocolRunCommand,
    ProtocolRunState,
    StepState,
)
from deksdenflow_core.domain.run_policy import MAX_PARALLEL_STEPS
from deksdenflow_core.errors import DomainError, PermanentFailure, WorkNotCurrent
from deksdenflow_core.jobs import result_meta
from deksdenflow_git import BranchLost, MirrorCache, PushRejected, Worktree

from deksdenflow_codex_worker.prompts import protocol_file
from deksdenflow_codex_worker.settings import WorkerSettings

log = structlog.get_logger("deksdenflow.codex_worker")
T = TypeVar("T")

JOB_TRAILER = "Deksdenflow-Job"
RUN_TRAILER = "Deksdenflow-Run"
SOURCE = "codex-worker"

# Whether the run still wants a job's work (it is re-read while the job goes on).
IsCurrent = Callable[[ProtocolRunState], bool]


@dataclass(frozen=True)
class Job:
    """One request taken from the log."""

    delivery: Delivery
    run: ProtocolRunState
    project: ProjectState

    @property
    def cause_id(self) -> str:
        return self.delivery.event.envelope.id

    @property
    def correlation_id(self) -> str:
        return self.delivery.event.envelope.correlation_id or self.run.protocol_run_id

    @property
    def number(self) -> str:
        return f"{self.run.number:04d}"


class JobKit:
    """The log, the git mirrors and the watch every job shares."""

    def __init__(self, repo: Repository, settings: WorkerSettings, mirrors: MirrorCache) -> None:
        self.repo = repo
        self.settings = settings
        self.mirrors = mirrors

    # --- the run ------------------------------------------------------------------------------------------

    async def take(self, delivery: Delivery, current: IsCurrent) -> Job:
        """The request's run and project, if the request is still current."""
        run_id = delivery.event.envelope.aggregate_id
        run = (await self.repo.load(PROTOCOL_RUN, run_id)).state
        if not current(run):
            raise WorkNotCurrent(f"run {run_id} is {run.status.value}; the request is no longer current")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        if not project.exists:
            raise WorkNotCurrent(f"project {run.project_id} of run {run_id} does not exist")
        return Job(delivery=delivery, run=run, project=project)

    async def check_still(self, job: Job, wanted: IsCurrent) -> None:
        run = (await self.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
        if not wanted(run):
            raise WorkNotCurrent(f"run {run.protocol_run_id} is now {run.status.value}")

    async def guarded(self, job: Job, current: IsCurrent, work: Awaitable[T]) -> T:
        """Run ``work`` while watching the run; cancel it (which stops the agent) once it is not current."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.settings.codex_worker_watch_seconds)
                if done:
                    return task.result()
                run = (await self.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
                if not current(run):
                    log.info("stopping the agent", run_status=run.status.value)
                    raise WorkNotCurrent(
                        f"run {run.protocol_run_id} is now {run.status.value}; agent stopped"
                    )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def record(self, run_id: str, commands: list[ProtocolRunCommand], delivery: Delivery) -> None:
        """Append results; a result the run no longer takes (it was cancelled, say) is dropped."""
        meta = result_meta(delivery, source=SOURCE, worker_id=self.settings.worker_id, aggregate_id=run_id)
        try:
            await self.repo.execute_many(PROTOCOL_RUN, run_id, commands, meta, redecide=3)
        except DomainError as exc:
            log.info(
                "result not taken by the run",
                reason=exc.message,
                commands=[type(c).__name__ for c in commands],
            )

    async def block(self, job: Job, step: StepState, reason: str) -> NoReturn:
        """Block ``step`` (and so the run) with ``reason``; the job ends here."""
        log.warning("step blocked", step=step.name, reason=reason)
        await self.record(
            job.run.protocol_run_id,
            [cmd.RecordStepBlocked(step_run_id=step.step_run_id, reason=reason)],
            job.delivery,
        )
        raise WorkNotCurrent(f"step blocked: {reason}")

    # --- the protocol branch ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def worktree(
        self, job: Job, name: str, *, expect_head: str = "", shared: bool = False
    ) -> AsyncIterator[Worktree]:
        """A fresh worktree of the protocol branch from the remote (no shared disk between replicas).
        ``shared``: other jobs of the run may work on the branch meanwhile (a parallel group's steps)."""
        run = job.run
        async with self.mirrors.worktree(
            job.project.project_id,
            job.project.git_url,
            branch=run.protocol_name,
            base_branch=run.base_branch or job.project.base_branch,
            job_id=f"{run.protocol_run_id[:12]}-{name}-{uuid.uuid4().hex[:6]}",
            expect_head=expect_head or None,
            shared=shared,
        ) as wt:
            yield wt

    @contextlib.asynccontextmanager
    async def step_worktree(self, job: Job, name: str, step: StepState) -> AsyncIterator[Worktree]:
        """The protocol branch as the log knows it, with the plan in it, for work on ``step``.

        A branch the remote deleted or rewritten is pushed back from the last head the log recorded
        (and the log says so); one that cannot be, or a checkout without the plan and the step file,
        blocks the step with the reason: a step never runs on a branch rebuilt from the base.
        """
        run = job.run
        async with contextlib.AsyncExitStack() as stack:
            try:
                wt = await stack.enter_async_context(
                    self.worktree(job, name, expect_head=run.branch_head_sha, shared=parallel(run, step))
                )
            except BranchLost as exc:
                await self.block(job, step, exc.message)
            if wt.restored is not None:
                restored = wt.restored
                await self.record(
                    run.protocol_run_id,
                    [
                        cmd.RecordBranchRestored(
                            branch=restored.branch,
                            commit_sha=restored.commit_sha,
                            found_sha=restored.found_sha or "",
                        )
                    ],
                    job.delivery,
                )
            # a step a trigger queued has no file until its execution writes it
            needed = ("plan.md",) if step.queued_by else ("plan.md", step.name)
            missing = [
                f"{run.protocol_root}/{f}" for f in needed if not (wt.path / run.protocol_root / f).is_file()
            ]
            if missing:
                await self.block(
                    job,
                    step,
                    f"the plan is missing from protocol branch {run.protocol_name} "
                    f"at {wt.base_sha}: {', '.join(missing)} not found",
                )
            yield wt

    async def push(self, wt: Worktree, *, parallel: bool = False) -> str:
        """Push the job's commit, never forced, and return what was pushed. A branch that moved under us
        is a failure with the reason — unless the step is one of a parallel group (``parallel``): then
        another step of the group pushed first, and the commit is rebased onto it and pushed again (a
        conflict with that step's change is the failure)."""
        for tries in range(_PARALLEL_PUSH_TRIES if parallel else 1):
            if tries:
                await asyncio.sleep(0.05 * tries)  # the other push is still finishing: let it
            try:
                return (await wt.push()).sha
            except PushRejected as exc:
                # Worth another try: a branch that moved (another step of the group pushed first: rebase)
                # or the remote's lock on it taken by such a push at the same moment. A remote that refuses
                # for another reason (a hook, a protected branch) refuses the rebased commit too.
                moved = exc.remote_sha is not None or any(r in exc.reason for r in _REF_LOCK_RACE)
                if not parallel or not moved:
                    raise PermanentFailure(f"push refused: {exc}") from exc
                try:
                    await wt.rebase_onto_remote()
                except PushRejected as conflict:
                    raise PermanentFailure(str(conflict)) from conflict
        raise PermanentFailure(
            f"push refused: {wt.branch} kept moving while {_PARALLEL_PUSH_TRIES} rebases were tried"
        )


async def branch_pushed(run: ProtocolRunState, wt: Worktree, sha: str) -> cmd.RecordBranchPushed:
    """The record of ``sha`` pushed to the run's branch, with its ancestors (read in ``wt``): a parallel
    group's earlier push recorded after a later one then leaves the branch head where it is."""
    return cmd.RecordBranchPushed(
        branch=run.protocol_name, commit_sha=sha, ancestors=await wt.ancestors(sha, MAX_PUSH_ANCESTORS)
    )


def parallel(run: ProtocolRunState, step: StepState) -> bool:
    """Whether ``step`` may be worked on beside other steps of its run (a parallel group the run's
    policy lets execute at once)."""
    return bool(step.parallel_group) and run_policy.parallel_steps(run.run_policy) > 1


# How git says two pushes to one ref met at the same moment (the loser's update of the ref failed).
_REF_LOCK_RACE = ("failed to update ref", "cannot lock ref")
# Rebases of a parallel step's commit onto a branch other steps of its group keep pushing to.
_PARALLEL_PUSH_TRIES = 1 + MAX_PARALLEL_STEPS


def step_of(run: ProtocolRunState, step_run_id: str) -> StepState:
    """The request's step of ``run``; a step the run does not have means the request is stale."""
    step = run.step(step_run_id)
    if step is None:
        raise WorkNotCurrent(f"step {step_run_id} is not in run {run.protocol_run_id}")
    return step


def read_protocol_file(wt: Worktree, root: str, name: str) -> str:
    """A protocol file of the worktree for a prompt, or a note that it is missing."""
    return protocol_file(wt.path, root, name)

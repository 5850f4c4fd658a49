"""Where a codex worker's job time goes, for benchmarks: how long each job took, and within it the git
commands it ran and its waits for the project's mirror lock.

The worker is built with :class:`TimedGit` and :class:`TimedMirrors` in place of the real runner and
cache (they only put a clock around the real calls), and :func:`time_jobs` gives each job a
:class:`JobClock` through a context variable, which the tasks a job starts inherit.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.worker import CodexWorker
from deksdenflow_core.consumer import Delivery
from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_git.git import GitResult


@dataclass
class Tally:
    calls: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds


@dataclass
class JobClock:
    """One job: its request type, its step (empty for planning), and where its time went."""

    kind: str
    step_run_id: str
    seconds: float = 0.0
    git: Tally = field(default_factory=Tally)
    lock_wait: float = 0.0


# The job running in this task (None outside jobs, e.g. in the git/CI worker).
JOB: ContextVar[JobClock | None] = ContextVar("bench_job", default=None)


@dataclass
class Timings:
    """Every job's clock, and git commands by (job type, subcommand)."""

    jobs: list[JobClock] = field(default_factory=list)
    git: defaultdict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))

    def of(self, kind: str) -> list[JobClock]:
        return [j for j in self.jobs if j.kind == kind]

    def git_of(self, kind: str) -> dict[str, Tally]:
        """The job type's git commands by subcommand, the costliest first."""
        mine = {command: t for (k, command), t in self.git.items() if k == kind}
        return dict(sorted(mine.items(), key=lambda item: -item[1].seconds))


class TimedGit(Git):
    """The real git runner, each command timed into ``timings`` and the running job's clock."""

    def __init__(self, timings: Timings, *, identity: GitIdentity, env: Mapping[str, str]) -> None:
        super().__init__(identity=identity, env=env)
        self._timings = timings

    async def execute(
        self,
        *args: str,
        cwd: Path | None = None,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        started = time.perf_counter()
        try:
            return await super().execute(*args, cwd=cwd, input=input, env=env)
        finally:
            seconds = time.perf_counter() - started
            job = JOB.get()
            self._timings.git[(job.kind if job else "other", _name(args))].add(seconds)
            if job is not None:
                job.git.add(seconds)


class TimedMirrors(MirrorCache):
    """The real mirror cache; the time a job waits for a project's lock goes on its clock."""

    @asynccontextmanager
    async def _locked(self, project_id: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        async with super()._locked(project_id):
            job = JOB.get()
            if job is not None:
                job.lock_wait += time.perf_counter() - started
            yield


def time_jobs(worker: CodexWorker, timings: Timings) -> None:
    """Give each job of ``worker`` a clock in ``timings`` (call before ``worker.run()``)."""
    inner = worker.handle

    async def handle(delivery: Delivery) -> None:
        request = delivery.event.event
        job = JobClock(type(request).__name__, getattr(request, "step_run_id", ""))
        JOB.set(job)
        started = time.perf_counter()
        try:
            await inner(delivery)
        finally:
            job.seconds = time.perf_counter() - started
            timings.jobs.append(job)

    worker.handle = handle


def agent_time(metrics: WorkerMetrics, phase: str) -> Tally:
    """Agent calls of ``phase`` (``exec``, ``qa``, ``planning``): the worker's own histogram."""
    tally = Tally()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.labels.get("phase") != phase:
                continue
            if sample.name == "deksdenflow_agent_call_seconds_count":
                tally.calls += int(sample.value)
            elif sample.name == "deksdenflow_agent_call_seconds_sum":
                tally.seconds += sample.value
    return tally


def _name(args: tuple[str, ...]) -> str:
    """``fetch``, ``worktree add``, ...: the subcommand, with its verb for ``worktree``."""
    if not args:
        return "?"
    return f"{args[0]} {args[1]}" if args[0] == "worktree" and len(args) > 1 else args[0]

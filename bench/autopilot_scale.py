"""Autopilot at scale: 50 protocols started at once, each going by itself to a ready pull request.

    make bench     (or: uv run python -m bench.autopilot_scale [--concurrency N] [--workers N] [--no-pr]
                                                                [--loop uvloop|asyncio])

50 protocols of 5 steps (a setup step without QA and four work steps with QA, each step editing a file;
QA passes) across 10 projects, each with a bare git origin of its own and a repository on a fake GitHub
that reads its branches from that origin. Each run is sent one ``StartProtocolRun`` and nothing else:
the autopilot (the projects' default run policy) plans it, runs each step, QAs it, opens a draft PR after
the first push and marks it ready when the last step is done. ``--no-pr``: the default policy with PR
opening ``never``; a run is then done when it completes.

The real codex worker (``--workers`` instances in this process sharing one durable consumer, each with
``--concurrency`` jobs at once and a mirror cache of its own) runs the ``scripted`` engine, whose calls
return at once with their edits; the real git/CI worker talks to the fake GitHub; the projector runs as
its own process (it writes the read model and the feed the workers take their requests from). NATS and
PostgreSQL are embedded unless ``DEKSDENFLOW_BENCH_NATS_URL``/``_DB_URL`` name existing ones. The workers
run on the standard event loop, as their services do (``--loop uvloop`` to compare: their services ran on
uvloop until this bench showed what it costs them).

Times are the events' envelope times in the log (bench.step_times); the agent's share is the worker's own
histogram of agent-call durations; each job's git commands and mirror-lock waits are timed around the
real runner and cache (bench.worker_timing). The target (issue 14) is <= 100 ms of orchestration a step.

The run is bound by CPU: the workers and their git commands take ~0.9 s of CPU a step on uvloop (whose
subprocesses start with fork(), copying the worker's page tables each time) and ~0.4 s on the standard
loop (vfork), so 250 steps need minutes of a 2-CPU machine, more when others share it. The CPU a step is
printed because it moves much less with the machine's load than the times do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from deksdenflow_codex_worker.engines.registry import build_registry
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_codex_worker.worker import CodexWorker
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    PrOpening,
    PrPolicy,
    RunMode,
    RunPolicy,
)
from deksdenflow_core.domain.project import ProjectCommand, ProjectStatus
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, connect
from deksdenflow_core.logging import configure_logging
from deksdenflow_core.settings import EventStoreSettings, LogSettings
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_git_ci_worker.settings import GitCiSettings
from deksdenflow_git_ci_worker.worker import GitCiWorker
from deksdenflow_runtime.embedded import free_port
from pydantic import SecretStr

from bench import cpu
from bench.orchestration import GIT_ENV, make_origin
from bench.servers import servers
from bench.step_times import RunsTimes, ms, runs_times
from bench.system import answers, pct, running, system_env
from bench.worker_timing import Tally, TimedGit, TimedMirrors, Timings, agent_time, time_jobs

PROJECTS, RUNS, STEPS = 10, 50, 5
GITHUB_TOKEN = "ghp_bench"  # noqa: S105 - the fake GitHub's throw-away token
DEADLINE_SECONDS = 600
# Events after which a run will not get done by itself: the bench stops and says which.
FAILURES = (
    "protocol_run.planning_failed",
    "protocol_run.step_execution_failed",
    "protocol_run.step_failed",
    "protocol_run.step_blocked",
    "protocol_run.blocked",
    "protocol_run.pr_failed",
    "protocol_run.pr_ready_failed",
    "protocol_run.cancelled",
)
EXEC, QA, PLANNING = "StepExecutionRequested", "QaRequested", "PlanningRequested"


def script() -> dict[str, Any]:
    """The scripted engine's script: five steps (setup without QA, four with light QA), each editing a
    file; QA passes."""
    names = ["00-setup.md", *(f"{i:02d}-part-{i}.md" for i in range(1, STEPS))]
    files = [
        {
            "filename": name,
            "content": f"# {name}\n\nDo part {i}.\n",
            "qa_policy": "skip" if i == 0 else "light",
            "engine_id": None,
            "model": None,
        }
        for i, name in enumerate(names)
    ]
    verdict = {
        "summary": "ok",
        "findings": {"blocking": [], "warnings": [], "notes": []},
        "next_actions": [],
        "verdict": "PASS",
    }
    edits = {
        name: {"message": f"Part {i}", "edits": [{"path": f"part_{i}.py", "content": f"PART = {i}\n"}]}
        for i, name in enumerate(names)
    }
    plan = {"plan_md": "# Plan\n", "context_md": "# Context\n", "log_md": "# Log\n", "step_files": files}
    return {"planning": {"message": plan}, "exec": edits, "qa": {"*": {"message": verdict}}}


@dataclass
class Workers:
    """The workers under measure, their clocks and their tasks."""

    codex: list[CodexWorker] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    git_ci: list[GitCiWorker] = field(default_factory=list)

    def agent(self, phase: str) -> Tally:
        """Agent calls of ``phase`` over every codex worker."""
        tallies = [agent_time(w.metrics, phase) for w in self.codex]
        return Tally(sum(t.calls for t in tallies), sum(t.seconds for t in tallies))

    def check(self) -> None:
        for task in self.tasks:
            if task.done():
                task.result()
                raise RuntimeError("a worker stopped")

    async def stop(self) -> None:
        for worker in self.codex:
            worker.stop()
        for git_worker in self.git_ci:
            git_worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks), 30)


def start_workers(
    store: JetStreamEventStore, root: Path, github: FakeGitHub, *, count: int, concurrency: int
) -> Workers:
    workers = Workers()
    script_path = root / "script.json"
    script_path.write_text(json.dumps(script()))
    identity = GitIdentity("bench", "bench@localhost")
    for i in range(count):
        home = root / f"codex-{i}"
        settings = WorkerSettings(
            worker_id=f"bench-codex-{i}",
            home=home,
            default_engine="scripted",
            scripted_script=script_path,
            auto_qa_after_exec=False,  # QA after each execution comes from the run policy
            decompose_steps=False,
            token_budget_mode="off",  # noqa: S106 - a mode, not a secret
            codex_worker_port=0,
            codex_worker_concurrency=concurrency,
        )
        git = TimedGit(workers.timings, identity=identity, env=GIT_ENV)
        worker = CodexWorker(
            store,
            settings,
            build_registry(settings, codex_home_root=home / "codex-home"),
            TimedMirrors(home / "git", git),
        )
        time_jobs(worker, workers.timings)
        workers.codex.append(worker)
        workers.tasks.append(asyncio.create_task(worker.run()))
    git_settings = GitCiSettings(
        worker_id="bench-git-ci",
        home=root / "git-ci",
        git_ci_worker_port=0,
        github_token=SecretStr(GITHUB_TOKEN),
        github_api_url=github.api_url,
    )
    plain = Git(identity=identity, env=GIT_ENV)
    mirrors = MirrorCache(root / "git-ci" / "git", plain)
    git_ci = GitCiWorker(store, store.connection, git_settings, mirrors, plain)
    workers.git_ci.append(git_ci)
    workers.tasks.append(asyncio.create_task(git_ci.run()))
    return workers


def meta() -> AppendMeta:
    return AppendMeta(source="bench", actor="user:bench", causation_id=str(uuid.uuid4()))


async def register(repo: Repository, origins: list[Path], policy: RunPolicy | None) -> list[str]:
    """A project per origin (on the fake GitHub as ``bench/p<i>``), registered and onboarded as
    ``POST /projects`` does it."""

    async def one(i: int, origin: Path) -> str:
        project_id = uuid.uuid4().hex
        command = pcmd.RegisterProject(
            name=f"p{i}",
            git_url=str(origin),
            ci_provider=CiProvider.GITHUB,
            forge_repo=f"bench/p{i}",
            run_policy=policy,
        )
        onboard: list[ProjectCommand] = [command, pcmd.RequestOnboarding()]
        await repo.execute_many(PROJECT, project_id, onboard, meta())
        deadline = time.monotonic() + 120
        while (status := (await repo.load(PROJECT, project_id)).state.status) is not ProjectStatus.READY:
            if time.monotonic() > deadline:
                raise RuntimeError(f"project p{i} was not onboarded: {status.value}")
            await asyncio.sleep(0.1)
        return project_id

    return list(await asyncio.gather(*(one(i, origin) for i, origin in enumerate(origins))))


async def create_runs(repo: Repository, project_ids: list[str]) -> list[str]:
    """``RUNS`` protocols spread over the projects (one after another within a project: a protocol's
    number is decided against its project's catalog)."""

    async def of_project(index: int, project_id: str) -> list[str]:
        created = []
        for n in range(index, RUNS, len(project_ids)):
            command = cmd.CreateProtocolRun(task_name=f"Bench {n}")
            created.append(
                (await repo.create_protocol_run(project_id, command, meta())).state.protocol_run_id
            )
        return created

    per_project = await asyncio.gather(*(of_project(i, p) for i, p in enumerate(project_ids)))
    return [run_id for ids in per_project for run_id in ids]


async def until_done(store: JetStreamEventStore, runs: set[str], done_type: str, workers: Workers) -> None:
    """Watch the feed until every run has had ``done_type``; stop at once on an event that ends a run."""
    done: set[str] = set()
    read_from = dict.fromkeys((done_type, *FAILURES), 1)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while done < runs:
        workers.check()
        for event_type, seq in read_from.items():
            subject = store.subjects.feed.of_type(event_type)
            page = (await store.read(subject, from_seq=seq, stream=store.feed_stream)).events
            if not page:
                continue
            read_from[event_type] = page[-1].stream_seq + 1
            mine = [e for e in page if e.envelope.aggregate_id in runs]
            if mine and event_type != done_type:
                raise RuntimeError(f"a run went wrong: {event_type} {mine[0].event!r}")
            done |= {e.envelope.aggregate_id for e in mine}
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(runs - done)} runs not done after {DEADLINE_SECONDS} s")
        await asyncio.sleep(0.2)


@dataclass
class Cpu:
    """CPU seconds used during the runs, by whom."""

    before: dict[tuple[int, str], float]
    usage: tuple[resource.struct_rusage, resource.struct_rusage]
    projector_pid: int
    spent: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, projector_pid: int) -> Cpu:
        usage = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
        return cls(cpu.snapshot(), usage, projector_pid)

    def stop(self) -> None:
        after = cpu.snapshot()
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)

        def used(name: str) -> float:
            return sum(s - self.before.get(k, 0.0) for k, s in after.items() if k[1] == name)

        self.spent = {
            "workers (this process)": _cpu(me) - _cpu(self.usage[0]),
            "git commands": _cpu(children) - _cpu(self.usage[1]),
            "projector": sum(
                s - self.before.get(k, 0.0) for k, s in after.items() if k[0] == self.projector_pid
            ),
            "postgres": used("postgres"),
            "nats-server": used("nats-server"),
        }


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


async def bench(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="deksdenflow-bench-autopilot-"))
    policy = RunPolicy(mode=RunMode.AUTOPILOT, pr=PrPolicy(open=PrOpening.NEVER)) if args.no_pr else None
    done_type = "protocol_run.completed" if args.no_pr else "protocol_run.pr_marked_ready"
    try:
        async with servers() as s:
            projector_port = free_port()
            env = system_env(s.nats_url, s.db_url, free_port(), projector_port)
            settings = EventStoreSettings(
                nats_url=s.nats_url,
                stream_name=env["DEKSDENFLOW_STREAM_NAME"],
                subject_prefix=env["DEKSDENFLOW_SUBJECT_PREFIX"],
            )
            nc = await connect(settings, name="bench-autopilot")
            store = JetStreamEventStore(nc, settings)
            await store.provision()
            repo = Repository(store)
            names = [f"bench/p{i}" for i in range(PROJECTS)]
            with (
                running(env, "deksdenflow_projector") as procs,
                FakeGitHub(token=GITHUB_TOKEN, repos=names) as github,
            ):
                origins = [make_origin(_mkdir(root / f"p{i}")) for i in range(PROJECTS)]
                for name, origin in zip(names, origins, strict=True):
                    github.link_git(name, origin)  # what the workers push to the origin, GitHub knows
                workers = start_workers(store, root, github, count=args.workers, concurrency=args.concurrency)
                try:
                    await answers(f"http://127.0.0.1:{projector_port}/health")
                    run_ids = await create_runs(repo, await register(repo, origins, policy))
                    used = Cpu.start(procs[0].pid)
                    await asyncio.gather(
                        *(repo.execute(PROTOCOL_RUN, r, cmd.StartProtocolRun(), meta()) for r in run_ids)
                    )
                    await until_done(store, set(run_ids), done_type, workers)
                    used.stop()
                    load = os.getloadavg()
                    events = (await store.read(store.subjects.all)).events
                finally:
                    await workers.stop()
            await nc.drain()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    times = runs_times(events, set(run_ids), done_type)
    report(
        times,
        workers,
        used,
        args,
        f"{s.where}, {args.loop}; load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f} on {os.cpu_count()} CPUs",
    )


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def report(times: RunsTimes, workers: Workers, used: Cpu, args: argparse.Namespace, where: str) -> None:
    steps = times.steps
    exec_agent, qa_agent = (_mean_ms(workers.agent(p)) for p in ("exec", "qa"))
    agent = {k: exec_agent + (qa_agent if s.qa_requested else 0.0) for k, s in steps.items()}
    waits = [ms(s.requested, s.started) for s in steps.values()]
    totals = {k: ms(s.requested, s.completed) for k, s in steps.items()}
    overhead = [totals[k] - agent[k] for k in steps]
    busy: dict[str, float] = dict.fromkeys(steps, 0.0)
    for job in workers.timings.jobs:
        if job.step_run_id in busy:
            busy[job.step_run_id] += job.seconds * 1000
    worked = [busy[k] - agent[k] for k in steps]
    to = "every run completed" if args.no_pr else "every PR ready"
    print(f"autopilot at scale: {RUNS} runs x {STEPS} steps, {PROJECTS} projects, scripted engine ({where})")
    print(
        f"  codex worker: {args.workers} x concurrency {args.concurrency} (in this process); git/CI worker: "
        f"concurrency {workers.git_ci[0].settings.git_ci_worker_concurrency}; projector: its own process"
    )
    print(
        f"  wall, the {RUNS} starts to {to}: {times.wall_seconds:7.1f} s   = "
        f"{len(steps) / times.wall_seconds:5.2f} steps/s   (steps retried: {times.retries})"
    )
    _line("planning, requested -> completed", [t * 1000 for t in times.planning_seconds])
    _line("step, execution requested -> started", waits, "(queued behind the other runs' jobs)")
    _line("step, requested -> completed", list(totals.values()))
    _line(
        "step, that minus agent time",
        overhead,
        f"(agent {exec_agent:.0f} ms exec, {qa_agent:.0f} ms QA a call)",
    )
    _line("step, worker busy minus agent", worked, "(exec + QA jobs; target <= 100 ms p50)")
    _jobs(workers)
    if times.pr_opened_seconds:
        _line("PR, requested -> opened", [t * 1000 for t in times.pr_opened_seconds])
        _line("PR, last step done -> marked ready", [t * 1000 for t in times.pr_ready_seconds])
    print("  CPU during the runs: " + ", ".join(f"{name} {s:.0f} s" for name, s in used.spent.items()))
    # What the machine's load does not change much: the workers' and their git commands' CPU a step.
    mine = used.spent["workers (this process)"] + used.spent["git commands"]
    print(f"  CPU a step, workers and their git commands: {mine / len(steps) * 1000:.0f} ms")


def _line(label: str, values_ms: list[float], note: str = "") -> None:
    print(
        f"  {label + ':':39} p50 {pct(values_ms, 50):8.0f} ms   p99 {pct(values_ms, 99):8.0f} ms   "
        f"{note}".rstrip()
    )


def _jobs(workers: Workers) -> None:
    """Each job type's mean time, and where it goes: git (the costliest commands), the mirror lock, the
    agent, the rest (the log, Python)."""
    for kind, label, phase in (
        (EXEC, "execution", "exec"),
        (QA, "QA", "qa"),
        (PLANNING, "planning", "planning"),
    ):
        jobs = workers.timings.of(kind)
        if not jobs:
            continue
        n = len(jobs)
        total = statistics.mean(j.seconds for j in jobs) * 1000
        git = statistics.mean(j.git.seconds for j in jobs) * 1000
        lock = statistics.mean(j.lock_wait for j in jobs) * 1000
        agent = _mean_ms(workers.agent(phase))
        commands = sum(j.git.calls for j in jobs) / n
        print(
            f"    {label} job ({n}): {total:5.0f} ms = git {git:4.0f} ms ({commands:.0f} commands) + "
            f"waiting for the mirror lock {lock:4.0f} ms + agent {agent:3.0f} ms + the rest "
            f"{total - git - lock - agent:4.0f} ms"
        )
        top = list(workers.timings.git_of(kind).items())[:7]
        print(
            "      git: " + ", ".join(f"{c} {t.calls / n:.0f}x {t.seconds / n * 1000:.0f} ms" for c, t in top)
        )


def _mean_ms(tally: Tally) -> float:
    return tally.seconds / tally.calls * 1000 if tally.calls else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.autopilot_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("DEKSDENFLOW_BENCH_CODEX_CONCURRENCY", "4")),
        help="jobs each codex worker runs at once (default 4, or DEKSDENFLOW_BENCH_CODEX_CONCURRENCY)",
    )
    parser.add_argument("--workers", type=int, default=1, help="codex worker instances (default 1)")
    parser.add_argument("--no-pr", action="store_true", help="the default policy with PR opening never")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="asyncio", help="the event loop")
    args = parser.parse_args()
    configure_logging(LogSettings(log_level="WARNING"), service="bench")
    run: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run if args.loop == "uvloop" else asyncio.run
    run(bench(args))


if __name__ == "__main__":
    main()

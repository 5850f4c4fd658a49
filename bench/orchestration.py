"""Orchestration overhead per step: the time a step takes that is not spent in the engine.

    make bench            (or: uv run python -m bench.orchestration [STEPS])

A 10-step protocol runs with the ``scripted`` engine (each agent call returns at once with a real file
edit) through the real codex worker: commands appended to the log exactly as the API appends them, the
worker taking each request from its durable consumer, re-reading the run, recording ownership, making a
worktree from the mirror, committing with its trailer, pushing to a bare origin, recording the result;
then QA the same way (auto QA after execution). Per step we measure the time from ``run_next_step``
until ``step_completed`` is in the log, and subtract the time spent inside the engine (the worker's own
histogram of agent-call durations). NATS is embedded; the feed the worker reads is written by the
projector's feed writer, here in this process; the git remote is a bare repository on local disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from deksdenflow_codex_worker.engines.registry import build_registry
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_codex_worker.worker import CodexWorker
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import RunMode, RunPolicy
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepStatus
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, connect
from deksdenflow_core.logging import configure_logging
from deksdenflow_core.settings import EventStoreSettings, LogSettings
from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_projector.feed import FeedWriter
from deksdenflow_runtime.embedded import EmbeddedNats, free_port

GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def script(steps: int) -> dict[str, Any]:
    files = [
        {
            "filename": f"{i:02d}-step-{i}.md",
            "content": f"# Step {i}\n",
            "qa_policy": "full",
            "engine_id": None,
            "model": None,
        }
        for i in range(steps)
    ]
    plan = {"plan_md": "# Plan\n", "context_md": "# Context\n", "log_md": "# Log\n", "step_files": files}
    verdict = {
        "summary": "ok",
        "findings": {"blocking": [], "warnings": [], "notes": []},
        "next_actions": [],
        "verdict": "PASS",
    }
    return {
        "planning": {"message": plan},
        "exec": {
            f["filename"]: {
                "message": f"Step {i}",
                "edits": [{"path": f"src/file_{i}.txt", "content": f"{i}\n"}],
            }
            for i, f in enumerate(files)
        },
        "qa": {"*": {"message": verdict}},
    }


def make_origin(root: Path) -> Path:
    """A bare repository ``root/origin.git`` whose ``main`` has one commit (a README)."""
    origin, scratch = root / "origin.git", root / "scratch"
    env = {
        **os.environ,
        **GIT_ENV,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    for repository in (["--bare", str(origin)], [str(scratch)]):
        subprocess.run(["git", "init", "-q", "--initial-branch=main", *repository], env=env, check=True)
    (scratch / "README.md").write_text("bench\n")
    for args in (
        ["add", "-A"],
        ["commit", "-qm", "init"],
        ["push", "-q", str(origin), "HEAD:refs/heads/main"],
    ):
        subprocess.run(["git", *args], cwd=scratch, env=env, check=True)
    return origin


async def bench(steps: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="deksdenflow-bench-orch-"))
    try:
        async with EmbeddedNats(root, port=free_port()) as nats:
            es = EventStoreSettings(nats_url=nats.url, stream_name="DF_BENCH", subject_prefix="b")
            nc = await connect(es, name="bench")
            store = JetStreamEventStore(nc, es)
            await store.provision()
            repo = Repository(store)
            worker = _worker(store, root, steps)
            # Workers take their requests from the feed, which the projector writes in production.
            feed = FeedWriter(store, durable="feed")
            feeding = asyncio.create_task(feed.run())
            working = asyncio.create_task(worker.run())
            origin = make_origin(root)

            def meta() -> AppendMeta:
                return AppendMeta(source="bench", actor="user:bench", causation_id=str(uuid.uuid4()))

            project_id = uuid.uuid4().hex
            # Manual: the bench asks for each step itself (autopilot, the default, would run them all).
            register = pcmd.RegisterProject(
                name="bench", git_url=str(origin), run_policy=RunPolicy(mode=RunMode.MANUAL)
            )
            await repo.execute(PROJECT, project_id, register, meta())
            created = await repo.create_protocol_run(
                project_id, cmd.CreateProtocolRun(task_name="Bench"), meta()
            )
            run_id = created.state.protocol_run_id
            await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta())
            planning_started = time.perf_counter()
            await _until(repo, run_id, lambda s: s.status is RunStatus.PLANNED)
            planning = time.perf_counter() - planning_started

            totals: list[float] = []
            engine: list[float] = []
            for i in range(steps):

                def completed(s: ProtocolRunState, i: int = i) -> bool:
                    return s.steps[i].status is StepStatus.COMPLETED

                before = _engine_seconds(worker)
                t0 = time.perf_counter()
                await repo.execute(PROTOCOL_RUN, run_id, cmd.RunNextStep(), meta())
                await _until(repo, run_id, completed)
                totals.append(time.perf_counter() - t0)
                engine.append(_engine_seconds(worker) - before)
            state = (await repo.load(PROTOCOL_RUN, run_id)).state
            worker.stop()
            feed.stop()
            await asyncio.wait_for(asyncio.gather(working, feeding), 30)
            await nc.drain()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    overhead = [t - e for t, e in zip(totals, engine, strict=True)]
    print(
        f"orchestration overhead, {steps}-step protocol, scripted engine (2 agent calls per step: exec + QA)"
    )
    print(f"  run status at the end:      {state.status.value}")
    print(f"  planning (1 call + commit): {planning * 1000:8.1f} ms")
    print(
        f"  per step, total:            p50 {statistics.median(totals) * 1000:7.1f} ms   "
        f"max {max(totals) * 1000:7.1f} ms"
    )
    print(f"  per step, in the engine:    p50 {statistics.median(engine) * 1000:7.1f} ms")
    print(
        f"  per step, overhead:         p50 {statistics.median(overhead) * 1000:7.1f} ms   mean "
        f"{statistics.mean(overhead) * 1000:7.1f} ms   max {max(overhead) * 1000:7.1f} ms"
    )


def _worker(store: JetStreamEventStore, root: Path, steps: int) -> CodexWorker:
    script_path = root / "script.json"
    script_path.write_text(json.dumps(script(steps)))
    settings = WorkerSettings(
        home=root / "worker",
        default_engine="scripted",
        scripted_script=script_path,
        auto_qa_after_exec=True,
        decompose_steps=False,
        token_budget_mode="off",  # noqa: S106 - a mode, not a secret
        codex_worker_port=0,
        codex_worker_watch_seconds=0.5,
    )
    git = Git(identity=GitIdentity("bench", "bench@localhost"), env=GIT_ENV)
    return CodexWorker(
        store,
        settings,
        build_registry(settings, codex_home_root=root / "codex-home"),
        MirrorCache(root / "mirrors", git),
    )


async def _until(repo: Repository, run_id: str, done: Callable[[ProtocolRunState], bool]) -> None:
    """Poll the log (the run's new events only) until ``done`` holds."""
    while not done((await repo.load(PROTOCOL_RUN, run_id)).state):  # noqa: ASYNC110 - polling the log is the point
        await asyncio.sleep(0.002)


def _engine_seconds(worker: CodexWorker) -> float:
    total = 0.0
    for metric in worker.metrics.agent_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
    return total


if __name__ == "__main__":
    configure_logging(LogSettings(log_level="WARNING"), service="bench")
    uvloop.run(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10))

"""Memory of every process of the system, idle and after a load, and disk per event in the log and in the
read model.

    make bench            (or: uv run python -m bench.footprint [PROJECTS])

NATS and PostgreSQL are embedded (bench.servers); the services ``deksdenflow run`` starts run as their own
processes, as in production (bench.system): the API, the projector, the codex worker (engine
``scripted``, as in ``make demo``) and the git/CI worker (pull requests on the local GitHub stand-in).
Memory is read once every service answers and nothing was done (idle), then after a load, once the
system is quiet again (the read model at the log's last event, no consumer of the log with anything
pending):

* through the API: PROJECTS projects registered (not onboarded) and a protocol run opened in each, 32
  clients sending pause/resume to their runs back to back, then every project, run and run's events
  read back (READS times, over 8 connections);
* whole protocols through both workers, as ``make demo`` drives them (onboarding, planning, steps with
  QA, real git pushes, a draft PR), so that the workers' figures are those of workers that worked;
* protocol runs appended to the log directly (bench.workload: planning, 10 steps with QA), so that the
  log is not mostly pauses: the codex worker still takes each of their requests and drops it as done.

Disk per event is the bytes of the log's stream(s) (every stream named like the configured one) and the
read model's tables with their indexes and TOAST, each divided by the events in the read model's
``events`` table (not the stream's messages: one message may carry several events).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_runtime import demo
from deksdenflow_runtime.embedded import free_port
from deksdenflow_runtime.supervisor import SERVICES

from bench.memory import MIB, Memory, of_tree
from bench.rawhttp import Connection
from bench.servers import Servers, servers
from bench.storage import Disk, disk, quiet
from bench.system import TOKEN, answers, running, system_env
from bench.workload import prefill

CLIENTS = 32
TOGGLES = 100  # pause/resume commands per client
READS = 4  # times each project, run and run's events are read
PROTOCOLS = 2  # whole protocols through the workers
LOG_EVENTS = 10_000  # events of protocol runs appended to the log directly
QUIET_WITHIN = 300.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Load:
    commands: int
    reads: int
    protocols: int
    log_events: int
    seconds: float


async def _each(port: int, jobs: list[tuple[str, str, bytes]], connections: int = 8) -> list[Any]:
    """Send every (method, path, body) over ``connections`` keep-alive connections; the JSON answers."""
    answers_: list[Any] = [None] * len(jobs)

    async def client(offset: int) -> None:
        conn = Connection("127.0.0.1", port, AUTH)
        for i in range(offset, len(jobs), connections):
            method, path, body = jobs[i]
            response = await conn.request(method, path, body)
            if response.status >= 300:
                raise RuntimeError(f"{method} {path} answered {response.status}: {response.body[:300]!r}")
            answers_[i] = response.json()
        await conn.close()

    await asyncio.gather(*(client(i) for i in range(connections)))
    return answers_


async def api_load(port: int, projects: int) -> tuple[int, int]:
    """Projects, a run in each, pause/resume, reads back: (commands, reads) sent."""
    created = await _each(
        port,
        [
            (
                "POST",
                "/projects",
                json.dumps({"name": f"p{i}", "git_url": "file:///b.git", "onboard": False}).encode(),
            )
            for i in range(projects)
        ],
    )
    project_ids = [p["id"] for p in created]
    body = json.dumps({"task_name": "bench"}).encode()
    opened = await _each(port, [("POST", f"/projects/{p}/protocols", body) for p in project_ids])
    run_ids = [r["id"] for r in opened]
    toggles = [
        ("POST", f"/protocols/{run}/actions/{'pause' if i % 2 == 0 else 'resume'}", b"")
        for run in run_ids[:CLIENTS]
        for i in range(TOGGLES)
    ]
    # One connection per run, so each run's pauses and resumes stay in order.
    await asyncio.gather(
        *(_each(port, toggles[i * TOGGLES : (i + 1) * TOGGLES], 1) for i in range(len(run_ids[:CLIENTS])))
    )
    reads = [("GET", f"/projects/{p}", b"") for p in project_ids]
    reads += [("GET", f"/protocols/{r}", b"") for r in run_ids]
    reads += [("GET", f"/protocols/{r}/events?limit=100", b"") for r in run_ids]
    await _each(port, reads * READS)
    return len(project_ids) + len(run_ids) + len(toggles), len(reads) * READS


async def whole_protocols(root: Path, port: int, count: int) -> None:
    """``count`` protocols driven as ``make demo`` drives one, each on a sample repository of its own
    (its steps push branches named after the protocol); the demo's progress lines are dropped."""
    api = demo.Api(f"http://127.0.0.1:{port}", TOKEN)
    origins = []
    for i in range(count):
        (root / f"sample-{i}").mkdir()
        origins.append(demo.make_sample_repo(root / f"sample-{i}"))
    with contextlib.redirect_stdout(io.StringIO()):
        await asyncio.gather(
            *(asyncio.to_thread(demo.drive, api, origin, "scripted", QUIET_WITHIN) for origin in origins)
        )


@dataclass(frozen=True)
class System:
    """The system under measure, and the bench's own connections to its log and read model."""

    servers: Servers
    root: Path
    api_port: int
    pids: dict[str, int]  # service → pid
    store: JetStreamEventStore
    db: asyncpg.Connection
    backend: int  # the PostgreSQL backend of ``db``: not the system's, so not counted


@asynccontextmanager
async def system() -> AsyncIterator[System]:
    """Servers and the four services, once each of them answers."""
    root = Path(tempfile.mkdtemp(prefix="deksdenflow-bench-footprint-"))
    try:
        async with servers() as s:
            with FakeGitHub(token="bench-forge", repos=[demo.FORGE_REPO]) as forge:  # noqa: S106
                api_port = free_port()
                # The workers' settings of `make demo` (scripted engine, auto QA, the GitHub stand-in),
                # then this bench's servers, log and ports.
                env = {
                    **demo.system_env(root, api_port, forge, "scripted"),
                    **system_env(s.nats_url, s.db_url, api_port, free_port()),
                }
                with running(env, *(spec.module for spec in SERVICES)) as started:
                    for spec in SERVICES:  # each answers on DEKSDENFLOW_<NAME>_PORT
                        port = env[f"DEKSDENFLOW_{spec.name.upper().replace('-', '_')}_PORT"]
                        await answers(
                            f"http://127.0.0.1:{port}{'/readyz' if spec.name == 'api' else '/health'}"
                        )
                    settings = EventStoreSettings(
                        nats_url=s.nats_url,
                        stream_name=env["DEKSDENFLOW_STREAM_NAME"],
                        subject_prefix=env["DEKSDENFLOW_SUBJECT_PREFIX"],
                    )
                    nc = await connect(settings, name="bench-footprint")
                    db = await asyncpg.connect(s.db_url)
                    try:
                        yield System(
                            servers=s,
                            root=root,
                            api_port=api_port,
                            pids={spec.name: p.pid for spec, p in zip(SERVICES, started, strict=True)},
                            store=JetStreamEventStore(nc, settings),
                            db=db,
                            backend=await db.fetchval("SELECT pg_backend_pid()"),
                        )
                    finally:
                        await db.close()
                        await nc.drain()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def footprint(system: System) -> dict[str, Memory | None]:
    """Memory of each part of the system (None: an existing server, whose processes are not ours)."""
    s = system.servers
    parts: dict[str, Memory | None] = {
        "nats-server": of_tree(s.nats_pid) if s.nats_pid else None,
        "postgres": of_tree(s.pg_pid, exclude=[system.backend]) if s.pg_pid else None,
    }
    parts.update({name: of_tree(pid) for name, pid in system.pids.items()})
    return parts


async def main(projects: int) -> None:
    async with system() as sut:
        await quiet(sut.store, sut.db, QUIET_WITHIN)
        idle, idle_load = footprint(sut), os.getloadavg()[0]
        started = time.perf_counter()
        commands, reads = await api_load(sut.api_port, projects)
        await whole_protocols(sut.root, sut.api_port, PROTOCOLS)
        log_events = await prefill(sut.store, target_events=LOG_EVENTS, concurrency=4)
        await quiet(sut.store, sut.db, QUIET_WITHIN)
        load = Load(commands, reads, PROTOCOLS, log_events, time.perf_counter() - started)
        loaded, loaded_load = footprint(sut), os.getloadavg()[0]
        sizes = await disk(sut.store, sut.db)
    report(sut.servers, load, idle, loaded, sizes, (idle_load, loaded_load))


def report(
    s: Servers,
    load: Load,
    idle: dict[str, Memory | None],
    loaded: dict[str, Memory | None],
    sizes: Disk,
    loadavg: tuple[float, float],
) -> None:
    print(
        f"footprint: memory idle, then after {load.commands:,} API commands, {load.reads:,} reads, "
        f"{load.protocols} whole protocols and {load.log_events:,} events of protocol runs appended to "
        f"the log ({load.seconds:.0f} s) ({s.where}, load average {loadavg[0]:.1f} idle, "
        f"{loadavg[1]:.1f} after)"
    )
    columns = ("RSS idle", "PSS idle", "USS idle", "RSS load", "PSS load", "USS load")
    print(f"  {'MiB':<22}" + "".join(f"{c:>10}" for c in columns))
    totals = (Memory(), Memory())
    for name, before in idle.items():
        after = loaded[name]
        if before is None or after is None:
            print(f"  {name:<22}  not measured (an existing server)")
            continue
        totals = (totals[0] + before, totals[1] + after)
        label = f"{name} ({before.processes}/{after.processes} procs)" if after.processes > 1 else name
        print(f"  {label:<22}" + "".join(f"{x:10.1f}" for x in (*before.mib(), *after.mib())))
    print(f"  {'total':<22}" + "".join(f"{x:10.1f}" for x in (*totals[0].mib(), *totals[1].mib())))
    print("  (PSS splits each shared page among the processes that map it, so it adds up; RSS does not)")
    events = sizes.events

    def per_event(size: int) -> str:
        return f"{size / MIB:6.1f} MiB = {size / events / 1024:.2f} KiB/event"

    messages = sum(x.messages for x in sizes.streams)
    print(f"disk per event ({events:,} events in the read model's events table):")
    print(
        f"  JetStream log    {per_event(sizes.log)}  ({len(sizes.streams)} stream(s), {messages:,} messages)"
    )
    print(f"  read model       {per_event(sizes.read_model)}  ({len(sizes.tables)} tables, indexes, TOAST)")
    print(
        f"    events table   {per_event(sizes.events_heap + sizes.events_indexes)}  "
        f"(rows {sizes.events_heap / events:.0f} B/event, "
        f"indexes {sizes.events_indexes / events:.0f} B/event)"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))

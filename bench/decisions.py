"""What a decision of several events costs, and whether one project's load slows another.

    make bench            (or: uv run python -m bench.decisions [SECONDS])

Printed as ratios to baselines measured in the same run (this machine's absolute figures move 3x with
its load):

1. The log, from 32 concurrent appenders in this process: single-event conditional appends, 3-event
   decisions as one message (today), and 3-event decisions as a JetStream atomic batch (before).
2. The API at 32 clients: ``POST /projects`` (one decision of three events: registered, token issued,
   onboarding requested) against pause/resume (one event each), both as their own processes.
3. Isolation: the p99 of a pause/resume on project B, idle, then while 32 clients create projects.
4. What each command costs in CPU, by process (API, projector, nats-server, PostgreSQL, this client),
   and so the most this machine's CPUs could carry of it were every one of them busy with nothing else.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, Position, connect
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_runtime.embedded import free_port

from bench import cpu
from bench.rawhttp import Connection
from bench.servers import servers
from bench.system import TOKEN, pct, ready, running, system_env

CLIENTS = 32


async def _rate(seconds: float, one: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """``CLIENTS`` loops calling ``one(client)`` back to back for ``seconds``: rate and latencies (ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(client: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one(client)
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1
        return done

    started = time.perf_counter()
    total = sum(await asyncio.gather(*(loop(c) for c in range(CLIENTS))))
    return total / (time.perf_counter() - started), latencies


async def _log_rates(nats_url: str, seconds: float) -> dict[str, float]:
    """Appends per second straight to the log: one event, a decision of three, an atomic batch of three."""
    settings = EventStoreSettings(
        nats_url=nats_url, stream_name=f"DF_BENCH_{uuid.uuid4().hex[:8]}", subject_prefix="bl"
    )
    nc = await connect(settings, name="bench-decisions")
    rates: dict[str, float] = {}
    try:
        for name, store, events in (
            ("single event", JetStreamEventStore(nc, settings), [ev.ProtocolRunPaused()]),
            ("decision of 3, one message", JetStreamEventStore(nc, settings), _three()),
            (
                "decision of 3, atomic batch (before)",
                JetStreamEventStore(nc, settings, decision_bytes=0),
                _three(),
            ),
        ):
            await store.provision()
            positions = [Position() for _ in range(CLIENTS)]
            run = uuid.uuid4().hex[:8]

            async def append(client: int) -> None:
                result = await store.append(  # noqa: B023 - each round's own store and events
                    project_id="p",
                    aggregate_type="protocol_run",
                    aggregate_id=f"{run}-{client}",  # noqa: B023
                    events=events,  # noqa: B023
                    expected=positions[client],  # noqa: B023
                    meta=AppendMeta(source="bench", actor="bench", causation_id=uuid.uuid4().hex),
                )
                last = result.events[-1]
                positions[client] = Position(last.stream_seq, last.envelope.aggregate_version)  # noqa: B023

            rates[name], _ = await _rate(seconds, append)
        for stream in (settings.stream_name, f"{settings.stream_name}_FEED"):
            await nc.request(f"$JS.API.STREAM.DELETE.{stream}", b"", timeout=10)
    finally:
        await nc.drain()
    return rates


def _three() -> list[ContractModel]:
    return [ev.ProtocolRunPaused(), ev.ProtocolRunResumed(), ev.ProtocolRunPaused()]


async def _api(
    port: int, seconds: float, roles: dict[int, str], costs: dict[str, tuple[float, dict[str, float]]]
) -> dict[str, tuple[float, list[float]]]:
    """The API's rates and latencies; ``costs`` gets each measured command's count and CPU by role."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conns = [Connection("127.0.0.1", port, headers) for _ in range(CLIENTS + 1)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        project = (await client.post("/projects", json={"name": "b", "git_url": "file:///b.git"})).json()
        runs = [
            (await client.post(f"/projects/{project['id']}/protocols", json={"task_name": f"t{i}"})).json()[
                "id"
            ]
            for i in range(CLIENTS + 1)
        ]
    toggles = [0] * (CLIENTS + 1)
    body = b'{"name":"n","git_url":"file:///n.git"}'
    results: dict[str, tuple[float, list[float]]] = {}
    failures: list[int] = []

    async def create(client: int) -> None:
        response = await conns[client].request("POST", "/projects", body)
        if response.status != 201:
            failures.append(response.status)

    async def toggle(client: int) -> None:
        action = "pause" if toggles[client] % 2 == 0 else "resume"
        toggles[client] += 1
        response = await conns[client].request("POST", f"/protocols/{runs[client]}/actions/{action}")
        if response.status != 200:
            failures.append(response.status)

    await _rate(min(seconds, 3.0), toggle)  # warm-up
    await _rate(min(seconds, 3.0), create)
    for name, one in (("pause/resume (1 event)", toggle), ("POST /projects (3 events)", create)):
        before, started = cpu.snapshot(), time.perf_counter()
        results[name] = await _rate(seconds, one)
        count = results[name][0] * (time.perf_counter() - started)
        costs[name] = (count, cpu.by_role(before, cpu.snapshot(), roles))

    # Isolation: project B's pause/resume from one client, idle, then under the creation load.
    async def b_samples(count: int) -> list[float]:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            await toggle(CLIENTS)
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    results["B idle"] = (0.0, await b_samples(300))
    load = asyncio.create_task(_rate(seconds + 5, create))
    await asyncio.sleep(1.0)  # the load is saturating before the samples start
    results["B under load"] = (0.0, await b_samples(300))
    await load
    for conn in conns:
        await conn.close()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return results


async def main(seconds: float) -> None:
    async with servers() as s:
        log = await _log_rates(s.nats_url, seconds)
        api_port, projector_port = free_port(), free_port()
        env = system_env(s.nats_url, s.db_url, api_port, projector_port)
        costs: dict[str, tuple[float, dict[str, float]]] = {}
        with running(env, "deksdenflow_projector", "deksdenflow_api") as (projector, api_proc):
            async with httpx.AsyncClient(timeout=5) as client:
                await ready(client, f"http://127.0.0.1:{projector_port}/health")
                await ready(client, f"http://127.0.0.1:{api_port}/readyz")
            roles = {api_proc.pid: "API", projector.pid: "projector"}
            api = await _api(api_port, seconds, roles, costs)
    load = os.getloadavg()
    print(f"decisions ({s.where}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}):")
    single = log["single event"]
    for name, rate in log.items():
        print(f"  log, {CLIENTS} appenders: {name:38} {rate:8,.0f}/s  = {rate / single:.2f} x a single event")
    one_event = api["pause/resume (1 event)"][0]
    for name in ("pause/resume (1 event)", "POST /projects (3 events)"):
        rate, ms = api[name]
        print(
            f"  API, {CLIENTS} clients: {name:27} {rate:8,.0f}/s  p50 {pct(ms, 50):5.1f} ms  "
            f"p99 {pct(ms, 99):6.1f} ms  = {rate / one_event:.2f} x a one-event command"
        )
    cpus = os.cpu_count() or 1
    for name, (count, seconds_by_role) in costs.items():
        # µs of CPU per command; "other" is whatever else ran on the machine meanwhile, not the command's.
        per = {role: used / count * 1e6 for role, used in seconds_by_role.items()}
        others = per.pop("other")
        total = sum(per.values())
        parts = ", ".join(f"{role} {us:,.0f}" for role, us in per.items())
        print(
            f"  CPU per command, {name} (µs): {parts} = {total / 1000:.2f} ms; {cpus} CPUs carry at most "
            f"{cpus * 1e6 / total:,.0f}/s of it (other processes meanwhile: {others:,.0f} µs per command)"
        )
    idle, loaded = pct(api["B idle"][1], 99), pct(api["B under load"][1], 99)
    print(
        f"  isolation: a pause/resume on project B, p99 idle {idle:.1f} ms, while {CLIENTS} clients create "
        f"projects {loaded:.1f} ms = {loaded / idle:.1f} x idle (goal <= 2 x)"
    )


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))

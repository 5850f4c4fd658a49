"""API command throughput and latency at 32 concurrent clients, and write-to-visible latency.

    make bench            (or: uv run python -m bench.api_commands [COMMANDS_PER_CLIENT])

The API and the projector run as their own processes (as in production) on embedded NATS and
PostgreSQL; 32 clients in this process each own a protocol run and send pause/resume commands back to
back (each one a decide → conditional append) over keep-alive connections (bench.rawhttp: httpx
costs more CPU per request than the API does). Then, for a sample of writes, the time from a
write's response until a read shows it (the read asks for the write's sequence with
X-Min-Event-Sequence, so it returns as soon as the projector has applied it).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import httpx
from deksdenflow_runtime.embedded import free_port

from bench.rawhttp import Connection
from bench.servers import servers
from bench.system import TOKEN, pct, ready, running, system_env

CLIENTS = 32


async def main(per_client: int) -> None:
    async with servers() as s:
        api_port, projector_port = free_port(), free_port()
        env = system_env(s.nats_url, s.db_url, api_port, projector_port)
        base = f"http://127.0.0.1:{api_port}"
        limits = httpx.Limits(max_connections=CLIENTS + 4, max_keepalive_connections=CLIENTS + 4)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with running(env, "deksdenflow_projector", "deksdenflow_api"):
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
                await ready(client, f"http://127.0.0.1:{projector_port}/health")
                await ready(client, "/readyz")
                project = (
                    await client.post("/projects", json={"name": "bench", "git_url": "file:///b.git"})
                ).json()
                runs = [
                    (
                        await client.post(f"/projects/{project['id']}/protocols", json={"task_name": f"t{i}"})
                    ).json()["id"]
                    for i in range(CLIENTS)
                ]
                latencies: list[float] = []
                errors = 0

                async def worker(run_id: str, count: int, measure: bool) -> None:
                    nonlocal errors
                    conn = Connection("127.0.0.1", api_port, headers)
                    for i in range(count):
                        action = "pause" if i % 2 == 0 else "resume"
                        started = time.perf_counter()
                        response = await conn.request("POST", f"/protocols/{run_id}/actions/{action}")
                        if measure:
                            latencies.append(time.perf_counter() - started)
                            errors += response.status != 200
                    await conn.close()

                await asyncio.gather(*(worker(r, 10, measure=False) for r in runs))  # warm-up (even count)
                started = time.perf_counter()
                await asyncio.gather(*(worker(r, per_client, measure=True) for r in runs))
                elapsed = time.perf_counter() - started

                visible: list[float] = []
                for i in range(200):
                    run_id = runs[i % CLIENTS]
                    action = "pause" if (per_client + i // CLIENTS) % 2 == 0 else "resume"
                    write = await client.post(f"/protocols/{run_id}/actions/{action}")
                    written = time.perf_counter()
                    read = await client.get(
                        f"/protocols/{run_id}",
                        headers={"X-Min-Event-Sequence": write.headers["X-Event-Sequence"]},
                    )
                    visible.append(time.perf_counter() - written)
                    assert read.json()["status"] == write.json()["status"], (read.text, write.text)

    total = CLIENTS * per_client
    ms = [x * 1000 for x in latencies]
    vis = [x * 1000 for x in visible]
    print(
        f"API commands: {total} in {elapsed:.2f}s = {total / elapsed:,.0f} commands/s at {CLIENTS} clients "
        f"({errors} non-200) ({s.where})"
    )
    print(
        f"command latency: p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
        f"mean {statistics.mean(ms):.1f} ms "
        "(target p99 <= 50 ms)"
    )
    print(
        f"write-to-visible: p50 {pct(vis, 50):.1f} ms, p99 {pct(vis, 99):.1f} ms over {len(vis)} writes "
        "(target p99 <= 100 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))

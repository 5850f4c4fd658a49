"""Point reads at 32 concurrent clients, against the machine's limit for the same kind of read.

    make bench            (or: uv run python -m bench.reads [SECONDS])

The API and the projector run as their own processes on embedded NATS and PostgreSQL; 32 clients in this
process read one project back to back (``GET /projects/{id}`` with the admin token: auth, read-your-writes
and the read model's query included) over keep-alive connections (bench.rawhttp). The limit is measured
in the same run with the same clients against the least a server must do for that read: a FastAPI app
with one asyncpg pool answering the same row from the same table (this module, run as that server).
Runs alternate (limit, API, limit, API, ...: ROUNDS pairs) and the medians are printed with their ratio,
since this machine's absolute figures move with its load (a median of two runs was only their mean: one
run slowed by other work on the machine moved the ratio by 20 points).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import uvicorn
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_runtime.embedded import free_port
from fastapi import FastAPI

from bench.rawhttp import Connection
from bench.servers import servers
from bench.system import TOKEN, answers, pct, running, spawn, stop, system_env

CLIENTS = 32
ROUNDS = 4


async def _load(port: int, path: str, headers: dict[str, str], seconds: float) -> tuple[float, list[float]]:
    """Requests per second and latencies (s) of CLIENTS clients reading ``path`` for ``seconds``."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    errors = 0

    async def client() -> int:
        nonlocal errors
        conn = Connection("127.0.0.1", port, headers)
        done = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = await conn.request("GET", path)
            latencies.append(time.perf_counter() - started)
            errors += response.status != 200
            done += 1
        await conn.close()
        return done

    started = time.perf_counter()
    total = sum(await asyncio.gather(*(client() for _ in range(CLIENTS))))
    if errors:
        raise RuntimeError(f"{errors} reads of {path} did not answer 200")
    return total / (time.perf_counter() - started), latencies


@asynccontextmanager
async def _system(nats_url: str, db_url: str) -> AsyncIterator[tuple[int, str]]:
    """The API and the projector, with one project in the read model: (API port, project id)."""
    api_port, projector_port = free_port(), free_port()
    env = system_env(nats_url, db_url, api_port, projector_port)
    with running(env, "deksdenflow_projector", "deksdenflow_api"):
        await answers(f"http://127.0.0.1:{api_port}/readyz")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers) as client:
            created = await client.post("/projects", json={"name": "bench", "git_url": "file:///b.git"})
            project_id = created.json()["id"]
        await answers(f"http://127.0.0.1:{api_port}/projects/{project_id}", headers)
        yield api_port, project_id


@asynccontextmanager
async def _baseline(db_url: str) -> AsyncIterator[int]:
    port = free_port()
    proc = spawn("bench.reads", {**os.environ, "BENCH_DB_URL": db_url, "BENCH_BASELINE_PORT": str(port)})
    try:
        await answers(f"http://127.0.0.1:{port}/health")
        yield port
    finally:
        stop(proc)


async def main(seconds: float) -> None:
    async with servers() as s, _system(s.nats_url, s.db_url) as (api_port, project_id):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        runs: dict[str, list[tuple[float, list[float]]]] = {"limit": [], "api": []}
        async with _baseline(s.db_url) as baseline_port:
            await _load(baseline_port, f"/projects/{project_id}", {}, 1.0)  # warm-up
            await _load(api_port, f"/projects/{project_id}", auth, 1.0)
            for _ in range(ROUNDS):
                runs["limit"].append(await _load(baseline_port, f"/projects/{project_id}", {}, seconds))
                runs["api"].append(await _load(api_port, f"/projects/{project_id}", auth, seconds))
    load = os.getloadavg()[0]
    for name, label in (
        ("limit", "machine limit (FastAPI + one asyncpg query)"),
        ("api", "GET /projects/{id}"),
    ):
        rates = [rate for rate, _ in runs[name]]
        ms = [x * 1000 for _, lat in runs[name] for x in lat]
        print(
            f"{label}: {statistics.median(rates):,.0f} req/s at {CLIENTS} clients "
            f"(runs {', '.join(f'{r:,.0f}' for r in rates)}), p50 {pct(ms, 50):.1f} ms, "
            f"p99 {pct(ms, 99):.1f} ms"
        )
    ratio = statistics.median(r for r, _ in runs["api"]) / statistics.median(r for r, _ in runs["limit"])
    print(f"reads at {ratio:.0%} of the machine's limit (target >= 80%) ({s.where}, load average {load:.1f})")


def _baseline_app(db_url: str) -> FastAPI:
    """The least a server does for the read: one pooled query, the row as JSON."""
    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool["p"] = await asyncpg.create_pool(db_url, min_size=1, max_size=10)
        yield
        await pool["p"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/projects/{project_id}")
    async def project(project_id: str) -> dict[str, Any]:
        async with pool["p"].acquire() as conn:
            row = await conn.fetchrow(f'SELECT * FROM "{SCHEMA}".projects WHERE id = $1', project_id)
        return dict(row) if row else {}

    return app


if __name__ == "__main__":
    if baseline_port := os.environ.get("BENCH_BASELINE_PORT"):  # the limit's server (see _baseline)
        uvicorn.run(_baseline_app(os.environ["BENCH_DB_URL"]), host="127.0.0.1", port=int(baseline_port))
    else:
        asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))

"""Read latency with 1,000 live SSE clients connected, against the same reads with none.

    make bench            (or: uv run python -m bench.sse_fanout [CLIENTS])

The API and the projector run as their own processes on embedded NATS and PostgreSQL. A writer sends a
command every 20 ms throughout, so the event stream is live. Reads (``GET /protocols/{id}``, 8 keep-alive
connections) are measured first without stream clients, then with CLIENTS clients on
``GET /events/stream`` (raw sockets that read and drop what they receive).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid

import httpx
from deksdenflow_runtime.embedded import free_port

from bench.api_commands import TOKEN, _pct, _ready, _spawn
from bench.rawhttp import Connection
from bench.servers import servers

READERS = 8
READS = 2000


async def _stream_client(port: int, started: asyncio.Event, stop: asyncio.Event, received: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    writer.write(request.encode())
    try:
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        started.set()
        while not stop.is_set():
            chunk = await reader.read(65536)
            if not chunk:
                break
            received[0] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _reads(port: int, run_id: str) -> list[float]:
    latencies: list[float] = []

    async def reader() -> None:
        conn = Connection("127.0.0.1", port, {"Authorization": f"Bearer {TOKEN}"})
        for _ in range(READS // READERS):
            started = time.perf_counter()
            response = await conn.request("GET", f"/protocols/{run_id}")
            latencies.append(time.perf_counter() - started)
            assert response.status == 200, response.body
        await conn.close()

    await asyncio.gather(*(reader() for _ in range(READERS)))
    return [x * 1000 for x in latencies]


async def main(clients: int) -> None:
    async with servers() as s:
        suffix = uuid.uuid4().hex[:8]
        api_port = free_port()
        env = {
            **os.environ,
            "DEKSDENFLOW_NATS_URL": s.nats_url,
            "DEKSDENFLOW_DB_URL": s.db_url,
            "DEKSDENFLOW_STREAM_NAME": f"DF_BENCH_{suffix}",
            "DEKSDENFLOW_SUBJECT_PREFIX": f"b{suffix}",
            "DEKSDENFLOW_API_PORT": str(api_port),
            "DEKSDENFLOW_API_TOKEN": TOKEN,
            "DEKSDENFLOW_PROJECTOR_PORT": str(free_port()),
            "DEKSDENFLOW_SSE_MAX_CLIENTS": str(max(clients, 1000)),
            "DEKSDENFLOW_LOG_LEVEL": "WARNING",
        }
        procs = [_spawn("deksdenflow_projector", env), _spawn("deksdenflow_api", env)]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        stop = asyncio.Event()
        received = [0]
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=60
            ) as api:
                await _ready(api, "/readyz")
                project = (
                    await api.post("/projects", json={"name": "bench", "git_url": "file:///b.git"})
                ).json()
                run_id = (
                    await api.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
                ).json()["id"]
                writes = 0

                async def write() -> None:
                    nonlocal writes
                    conn = Connection("127.0.0.1", api_port, headers)
                    while not stop.is_set():
                        action = "pause" if writes % 2 == 0 else "resume"
                        await conn.request("POST", f"/protocols/{run_id}/actions/{action}")
                        writes += 1
                        await asyncio.sleep(0.02)
                    await conn.close()

                await api.post(f"/protocols/{run_id}/actions/start")
                writer = asyncio.create_task(write())
                await _reads(api_port, run_id)  # warm-up
                baseline = await _reads(api_port, run_id)
                connected = [asyncio.Event() for _ in range(clients)]
                streams = [
                    asyncio.create_task(_stream_client(api_port, connected[i], stop, received))
                    for i in range(clients)
                ]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected)), 120)
                before = received[0]
                loaded = await _reads(api_port, run_id)
                delivered = received[0] - before
                stop.set()
                await writer
                for task in streams:
                    task.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)

    print(
        f"reads without SSE clients: p50 {_pct(baseline, 50):.1f} ms, p99 {_pct(baseline, 99):.1f} ms "
        f"({READS} reads, {READERS} connections, a write every 20 ms) ({s.where})"
    )
    print(
        f"reads with {clients} SSE clients: p50 {_pct(loaded, 50):.1f} ms, p99 {_pct(loaded, 99):.1f} ms "
        f"({delivered:,} events delivered to the clients meanwhile)"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

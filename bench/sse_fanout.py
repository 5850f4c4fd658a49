"""Read latency with 1,000 live SSE clients connected, against the same reads with none.

    make bench            (or: uv run python -m bench.sse_fanout [CLIENTS])

The API and the projector run as their own processes on embedded NATS and PostgreSQL. A writer sends a
command every 20 ms throughout, so the event stream is live. Reads (``GET /protocols/{id}``, 8 keep-alive
connections) are measured first without stream clients, then with CLIENTS clients on
``GET /events/stream`` (raw sockets, in a process of their own, that read and drop what they receive).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import httpx
from deksdenflow_runtime.embedded import free_port

from bench.rawhttp import Connection
from bench.servers import servers
from bench.system import TOKEN, pct, ready, running, system_env

READERS = 8
READS = 2000


async def _stream_client(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    writer.write(request.encode())
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    CONNECTED.append(port)
    while await reader.read(65536):
        pass


CONNECTED: list[int] = []


async def clients_only(port: int, clients: int) -> None:
    """The stream clients, in a process of their own so that reading them does not slow the measuring
    loop: connects them all, says so on stdout, then reads until killed."""
    tasks = [asyncio.create_task(_stream_client(port)) for _ in range(clients)]
    while len(CONNECTED) < clients:
        for task in tasks:
            if task.done():
                task.result()  # raises a refusal
        await asyncio.sleep(0.1)
    print("connected", flush=True)
    await asyncio.gather(*tasks)


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
        api_port = free_port()
        env = system_env(
            s.nats_url, s.db_url, api_port, free_port(), DEKSDENFLOW_SSE_MAX_CLIENTS=str(max(clients, 1000))
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        stop = asyncio.Event()
        with running(env, "deksdenflow_projector", "deksdenflow_api"):
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=60
            ) as api:
                await ready(api, "/readyz")
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
                streams = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.sse_fanout",
                    "--clients-only",
                    str(api_port),
                    str(clients),
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
                assert streams.stdout is not None
                line = await asyncio.wait_for(streams.stdout.readline(), 300)
                if line.strip() != b"connected":
                    raise RuntimeError(f"stream clients did not connect: {line!r}")
                before = await _sent(api)
                loaded = await _reads(api_port, run_id)
                delivered = await _sent(api) - before
                stop.set()
                await writer
                os.killpg(streams.pid, signal.SIGTERM)
                await streams.wait()

    print(
        f"reads without SSE clients: p50 {pct(baseline, 50):.1f} ms, p99 {pct(baseline, 99):.1f} ms "
        f"({READS} reads, {READERS} connections, a write every 20 ms) ({s.where})"
    )
    print(
        f"reads with {clients} SSE clients: p50 {pct(loaded, 50):.1f} ms, p99 {pct(loaded, 99):.1f} ms "
        f"({delivered:.0f} fan-out reads of the feed meanwhile, each sent to every client)"
    )


async def _sent(api: httpx.AsyncClient) -> float:
    text = (await api.get("/metrics")).text
    name = "deksdenflow_api_sse_feed_reads_total "
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients-only"]:
        asyncio.run(clients_only(int(sys.argv[2]), int(sys.argv[3])))
    else:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

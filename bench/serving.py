"""The API serving reads while something else runs (a rebuild): its process, a paced read load, figures.

The API runs as its own process, as in production, on the bench's log and database; ``CLIENTS`` clients
each read one protocol run (``GET /protocols/{id}``: auth, the read model's query) every ``PERIOD``
seconds. Paced, not back to back: the point is that reads keep being answered, and a read load that
took a core would only say how the two share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_runtime.embedded import free_port

from bench.rawhttp import Connection
from bench.system import TOKEN, answers, pct, running, system_env

CLIENTS = 4
PERIOD = 0.05  # each client: one read every 50 ms (80 reads/s in all)


@dataclass
class Reads:
    """Reads answered while the load ran."""

    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if not self.latencies:
            return f"no read answered ({self.failed} failed)"
        ms = [x * 1000 for x in self.latencies]
        return (
            f"{len(ms):,} reads answered at {len(ms) / self.seconds:,.0f}/s, {self.failed} failed; "
            f"p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.0f} ms"
        )


@contextlib.asynccontextmanager
async def api(es: EventStoreSettings, db_url: str) -> AsyncIterator[int]:
    """The API process on this log and database; yields its port."""
    api_port = free_port()
    env = system_env(es.nats_url, db_url, api_port, free_port())
    env |= {"DEKSDENFLOW_STREAM_NAME": es.stream_name, "DEKSDENFLOW_SUBJECT_PREFIX": es.subject_prefix}
    with running(env, "deksdenflow_api"):
        await answers(f"http://127.0.0.1:{api_port}/livez")
        yield api_port


@contextlib.asynccontextmanager
async def reading(port: int, path: str) -> AsyncIterator[Reads]:
    """``CLIENTS`` paced readers of ``path`` for as long as the block runs."""
    reads = Reads()
    stopping = asyncio.Event()

    async def client() -> None:
        conn = Connection("127.0.0.1", port, {"Authorization": f"Bearer {TOKEN}"})
        try:
            while not stopping.is_set():
                started = time.perf_counter()
                try:
                    response = await conn.request("GET", path)
                    ok = response.status == 200
                except Exception:  # the connection broke: count it, open another
                    ok = False
                    conn = Connection("127.0.0.1", port, {"Authorization": f"Bearer {TOKEN}"})
                if ok:
                    reads.latencies.append(time.perf_counter() - started)
                else:
                    reads.failed += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        stopping.wait(), max(0.0, PERIOD - (time.perf_counter() - started))
                    )
        finally:
            await conn.close()

    started = time.perf_counter()
    tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    try:
        yield reads
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        reads.seconds = time.perf_counter() - started

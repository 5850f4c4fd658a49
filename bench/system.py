"""The services under benchmark, each as its own ``python -m`` process as in production: their
environment, starting them, waiting until they answer, stopping them. Shared by every bench that drives
the system through its API, so that they all start it the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

TOKEN = "bench-admin"  # noqa: S105  (a throw-away token for a throw-away system)


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def system_env(
    nats_url: str, db_url: str, api_port: int, projector_port: int, **extra: str
) -> dict[str, str]:
    """The environment of an API and a projector on a log of their own (a fresh stream and prefix)."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "DEKSDENFLOW_NATS_URL": nats_url,
        "DEKSDENFLOW_DB_URL": db_url,
        "DEKSDENFLOW_STREAM_NAME": f"DF_BENCH_{suffix}",
        "DEKSDENFLOW_SUBJECT_PREFIX": f"b{suffix}",
        "DEKSDENFLOW_API_PORT": str(api_port),
        "DEKSDENFLOW_API_TOKEN": TOKEN,
        "DEKSDENFLOW_PROJECTOR_PORT": str(projector_port),
        "DEKSDENFLOW_LOG_LEVEL": "WARNING",
        **extra,
    }


def spawn(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m module`` in a session of its own (so that stopping it stops its children too)."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's session, then wait for it to exit (each service stops on SIGTERM)."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@contextmanager
def running(env: dict[str, str], *modules: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The ``modules`` started with ``env``, in that order; all stopped on the way out."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for module in modules:
            procs.append(spawn(module, env))
        yield procs
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


async def ready(client: httpx.AsyncClient, url: str) -> None:
    """Poll ``url`` until it answers 200 (a minute at most: a loaded machine starts services slowly)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


async def answers(url: str, headers: dict[str, str] | None = None) -> None:
    """:func:`ready` with a client of its own."""
    async with httpx.AsyncClient(timeout=5, headers=headers) as client:
        await ready(client, url)

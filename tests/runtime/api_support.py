"""An API process (``python -m deksdenflow_api``) for runtime tests: its own stream, its output in a file."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.runtime.cli_support import cli_env


def api_env(nats_url: str, db_url: str, port: int, **overrides: str) -> dict[str, str]:
    """A clean environment for one API on ``port``, with a stream and subject prefix of its own."""
    suffix = uuid.uuid4().hex[:10]
    return cli_env(
        DEKSDENFLOW_NATS_URL=nats_url,
        DEKSDENFLOW_DB_URL=db_url,
        DEKSDENFLOW_API_PORT=str(port),
        DEKSDENFLOW_STREAM_NAME=f"DF_RT_{suffix}",
        DEKSDENFLOW_SUBJECT_PREFIX=f"r{suffix}",
        **overrides,
    )


def start_api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start the API; its stdout and stderr go to ``log`` (appended, so restarts keep the earlier output)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deksdenflow_api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def answers(port: int) -> bool:
    """Whether the API on ``port`` answers HTTP at all (any status)."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(f"http://127.0.0.1:{port}/health")
    except httpx.HTTPError:
        return False
    return True

"""The whole system for an evaluation: ``deksdenflow run`` (embedded NATS and PostgreSQL, the API, the
projector and both workers) under ``<home>``, its codex worker's engines (the Codex and the Claude Code
CLIs) pointed at the evaluation's model servers.

The data stays under ``<home>`` between evaluations, so older evaluations can be read and re-scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from deksdenflow_runtime.embedded import free_port

from evals.models import ModelServer

GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
AGENTS_BIN = (
    Path(__file__).resolve().parents[1] / "services" / "codex_worker" / "agents" / "node_modules" / ".bin"
)
START_SECONDS = 120.0


class SystemError_(Exception):
    """The system did not start, or stopped; the message says where its output is."""


@dataclass(frozen=True)
class Harness:
    """What the runner needs of a running system: an admin API client and its home, under which the codex
    worker makes each call's CODEX_HOME and Claude config directory (normalised away in cassettes)."""

    api: httpx.AsyncClient
    home: Path


def agent_bin(name: str) -> str:
    """A pinned agent CLI (``make agents``): ``codex`` or ``claude``."""
    found = AGENTS_BIN / name
    if not found.exists():
        raise SystemError_(f"{found} is missing: run `make agents` (the pinned agent CLIs) first")
    return str(found)


_MODEL_APIS = frozenset({"OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"})


@contextlib.asynccontextmanager
async def local_system(
    home: Path, models: ModelServer, *, concurrency: int = 4, env: Mapping[str, str] | None = None
) -> AsyncIterator[Harness]:
    """``deksdenflow run`` under ``home`` on free ports until the block ends; ``env``: more settings."""
    home = await asyncio.to_thread(_made, home)
    api_port = free_port()
    token = secrets.token_urlsafe(24)
    env = {
        # no key to a real model API (live mode's proxies, in this process, hold them): the agents run
        # model-chosen commands, and talk only to the local model server
        **{k: v for k, v in os.environ.items() if not k.startswith("DEKSDENFLOW_") and k not in _MODEL_APIS},
        **GIT_ENV,
        **models.codex_env(),
        **models.claude_env(),
        "DEKSDENFLOW_HOME": str(home),
        "DEKSDENFLOW_API_PORT": str(api_port),
        "DEKSDENFLOW_API_TOKEN": token,
        "DEKSDENFLOW_EMBEDDED_NATS_PORT": str(free_port()),
        "DEKSDENFLOW_EMBEDDED_PG_PORT": str(free_port()),
        "DEKSDENFLOW_PROJECTOR_PORT": str(free_port()),
        "DEKSDENFLOW_CODEX_WORKER_PORT": str(free_port()),
        "DEKSDENFLOW_GIT_CI_WORKER_PORT": str(free_port()),
        "DEKSDENFLOW_DEFAULT_ENGINE": "codex",
        "DEKSDENFLOW_CODEX_BIN": agent_bin("codex"),
        "DEKSDENFLOW_CLAUDE_BIN": agent_bin("claude"),
        "DEKSDENFLOW_CODEX_ARGS": models.codex_args(),
        "DEKSDENFLOW_CODEX_WORKER_CONCURRENCY": str(concurrency),
        "DEKSDENFLOW_TOKEN_BUDGET_MODE": "off",
        "DEKSDENFLOW_LOG_LEVEL": "warning",
        **(env or {}),
    }
    log_path = home / "system.log"
    with log_path.open("ab") as log:
        # the supervisor: embedded NATS + PostgreSQL, then the four services
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deksdenflow_runtime", "run", env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{api_port}"
            # No kept-alive connections: the API closes idle ones after a few seconds, and a run polled
            # while others wait would reuse one just closed.
            async with httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as api:
                await _wait_ready(api, proc, log_path)
                yield Harness(api=api, home=home)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _made(home: Path) -> Path:
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


async def _wait_ready(api: httpx.AsyncClient, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise SystemError_(f"the system exited with {proc.returncode} while starting; see {log}")
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.3)
    raise SystemError_(f"the system was not ready within {START_SECONDS:.0f} s; see {log}")

"""Running ``deksdenflow`` as a real process, with a clean environment pointed at a test system."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.api.conftest import ADMIN_TOKEN, System


def command() -> list[str]:
    """The installed console script (the runtime's, which hands these commands to the client)."""
    script = Path(sys.executable).parent / "deksdenflow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deksdenflow_cli"]


def env_for(home: Path, **overrides: str) -> dict[str, str]:
    """No DEKSDENFLOW_* of the developer's shell, a config dir and a local home of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEKSDENFLOW_") and k != "NO_COLOR"}
    env.update(XDG_CONFIG_HOME=str(home / "config"), DEKSDENFLOW_HOME=str(home / "local"), COLUMNS="200")
    return {**env, **overrides}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _run(args: list[str], env: dict[str, str], stdin: str | None) -> Result:
    done = subprocess.run(
        [*command(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def cli(
    system: System | None,
    home: Path,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    stdin: str = "",
    **env: str,
) -> Result:
    """Run one command in a thread (the API serves from this test's event loop)."""
    overrides = dict(env)
    if system is not None:
        overrides.setdefault("DEKSDENFLOW_API_URL", system.base_url)
    if token is not None:
        overrides.setdefault("DEKSDENFLOW_API_TOKEN", token)
    return await asyncio.to_thread(_run, list(args), env_for(home, **overrides), stdin)


async def start(
    system: System, home: Path, *args: str, api_url: str | None = None
) -> asyncio.subprocess.Process:
    """A long-running command (watch, wait) as a child process of the test's loop."""
    env = env_for(home, DEKSDENFLOW_API_URL=api_url or system.base_url, DEKSDENFLOW_API_TOKEN=ADMIN_TOKEN)
    return await asyncio.create_subprocess_exec(
        *command(), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finish(process: asyncio.subprocess.Process, within: float = 30) -> Result:
    stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


class CuttableProxy:
    """A TCP relay to the API whose open connections the test can cut (a dropped stream)."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.writers: list[asyncio.StreamWriter] = []
        self.streams_opened = 0
        self.stream_open = asyncio.Event()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if upstream and b"GET /events/stream" in data:
                    self.streams_opened += 1
                    self.stream_open.set()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._relay(reader, up_writer, upstream=True), self._relay(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            self.cut()
            server.close()

"""One service process run by the supervisor: its output copied, prefixed, to ours, and its last lines
kept to explain a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import TextIO

from deksdenflow_core.logging import get_logger

_log = get_logger(__name__)

LAST_LINES = 20


@dataclass(frozen=True)
class ServiceSpec:
    """A service the supervisor runs: a display name and the package run with ``python -m``."""

    name: str
    module: str


class ServiceProcess:
    """A running service process and the task that copies its output, prefixed, to ours."""

    def __init__(self, spec: ServiceSpec, proc: asyncio.subprocess.Process, out: TextIO, width: int) -> None:
        if proc.stdout is None:
            raise ValueError("the service's output must be a pipe")
        self.spec = spec
        self.proc = proc
        self.started_at = time.monotonic()
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self.exited = asyncio.create_task(proc.wait(), name=f"wait-{spec.name}")
        self._pump = asyncio.create_task(self._copy_output(proc.stdout, out, f"{spec.name:<{width}} | "))

    async def _copy_output(self, reader: asyncio.StreamReader, out: TextIO, prefix: str) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # EOF: flush a last unterminated line
                line = exc.partial
            except asyncio.LimitOverrunError as exc:  # an enormous line: pass it on in pieces
                line = await reader.read(exc.consumed)
            if not line:
                return
            text = line.decode(errors="replace").rstrip("\n")
            self.last_lines.append(text)
            out.write(prefix + text + "\n")
            out.flush()

    async def output_done(self, seconds: float) -> None:
        """Wait (at most ``seconds``) until everything the process wrote was copied."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), seconds)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, SIGKILL to the whole process group after ``grace`` seconds; returns the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
            except TimeoutError:
                _log.warning("service did not stop in time, killing it", service=self.spec.name)
        # Also sweeps whatever the service spawned (agent CLIs, git) and left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        await self.output_done(2.0)
        return self.proc.returncode

"""Helpers of the engine tests: calls, a git worktree, and finding the processes an agent started."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from deksdenflow_codex_worker.engines.base import AgentCall, CallPhase, Sandbox


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=30
    ).stdout.rstrip("\n")


def make_call(
    workdir: Path,
    prompt: str = "Say hello.",
    *,
    model: str,
    phase: CallPhase = CallPhase.EXEC,
    sandbox: Sandbox = Sandbox.WORKSPACE_WRITE,
    output_schema: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    timeout_seconds: float = 60.0,
) -> AgentCall:
    return AgentCall(
        call_id=f"test-{uuid.uuid4().hex[:12]}",
        phase=phase,
        prompt=prompt,
        workdir=workdir,
        model=model,
        sandbox=sandbox,
        output_schema=output_schema,
        labels=labels or {},
        timeout_seconds=timeout_seconds,
    )


class Descendants:
    """Our descendant processes as they are now; ``new()`` gives those started since.

    A process is told by (pid, start time), not by comparing its start time with a wall-clock time:
    psutil derives start times from the boot time, which is whole seconds and drifts from
    ``time.time()`` (by ~0.75 s on a VM seen here), so a clock comparison missed fresh processes.
    """

    def __init__(self) -> None:
        self._before = {_identity(p) for p in psutil.Process().children(recursive=True)} - {None}

    def new(self) -> list[psutil.Process]:
        """Live descendants that did not exist at creation (zombies excluded)."""
        found = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if _identity(proc) not in self._before and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        return found


def _identity(proc: psutil.Process) -> tuple[int, float] | None:
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return None


def processes_started_since(since: Descendants) -> list[psutil.Process]:
    """Our live descendants started after the ``since`` snapshot, zombies excluded."""
    return since.new()


def command_lines_since(since: Descendants) -> list[str]:
    """The command lines of ``processes_started_since(since)`` (those that are still there)."""
    lines = []
    for proc in processes_started_since(since):
        try:
            lines.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    return lines


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (not gone, not zombies)."""
    living = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                living.append(proc)
        except psutil.Error:
            continue
    return living


def entries(directory: Path) -> list[str]:
    """The names in ``directory`` (e.g. to check that per-call homes were removed)."""
    return sorted(p.name for p in directory.iterdir())

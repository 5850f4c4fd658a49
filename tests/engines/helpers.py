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


def processes_started_since(started: float) -> list[psutil.Process]:
    """Our live descendants created at or after ``started`` (a time.time()), zombies excluded."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.create_time() >= started - 0.5 and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def command_lines_since(started: float) -> list[str]:
    """The command lines of ``processes_started_since(started)`` (those that are still there)."""
    lines = []
    for proc in processes_started_since(started):
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

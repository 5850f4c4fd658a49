"""CodeMachine's JavaScript evaluated as data, in a Node subprocess and never in this process.

A package's workflow templates and ``config/*.js`` are programs (``require``, ``path.join``, template
globals). ``codemachine_sandbox.js`` runs them in a ``vm`` context with stand-ins for those globals and
answers their exported values as JSON. The process it runs in may read that script only (Node's
permission model: no file read or write, no child process, no worker thread), generates no code from
strings, has no environment (no secret to read), 128 MB of heap, and a time limit per file and in all; the
package's files reach it on stdin. Whatever a template does beyond building data — an endless loop, a
``require('fs')`` or ``require('http')``, spawning a process — ends as a problem naming its file.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from deksdenflow_core.specs.model import SpecProblem

SCRIPT = resources.files("deksdenflow_core.specs").joinpath("codemachine_sandbox.js")
PER_FILE_MS = 2000  # one template or config file; real ones take a few milliseconds
HEAP_MB = 128


class SandboxUnavailable(RuntimeError):
    """No Node.js (20 or later) to evaluate a package with: nothing was evaluated."""


@dataclass(frozen=True)
class Evaluated:
    values: dict[str, Any]  # entry path -> its exported value (JSON)
    problems: tuple[SpecProblem, ...]


@functools.cache
def _permission_flag(node: str) -> str:
    """Node 20-22.12 call the permission model experimental; later releases made it ``--permission``."""
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, env={}, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"{node} cannot run: {exc}") from exc
    major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    if major < 20:
        raise SandboxUnavailable(f"Node.js {version} has no permission model: 20 or later is needed")
    if major >= 24 or (major, minor) >= (23, 5) or (major == 22 and minor >= 13):
        return "--permission"
    return "--experimental-permission"


def find_node(configured: str = "") -> str:
    """The Node.js binary: the configured one, else ``node`` on PATH."""
    node = configured or shutil.which("node") or ""
    if not node:
        raise SandboxUnavailable(
            "Node.js is not installed (node is not on PATH): CodeMachine's JavaScript cannot be read"
        )
    return node


def evaluate(
    files: dict[str, str], entries: Sequence[str], *, node: str = "", per_file_ms: int = PER_FILE_MS
) -> Evaluated:
    """Each entry's exported value, and a problem for each entry that failed or was stopped."""
    binary = find_node(node)
    with resources.as_file(SCRIPT) as script:
        command = [
            binary,
            _permission_flag(binary),
            f"--allow-fs-read={script}",
            "--disallow-code-generation-from-strings",
            f"--max-old-space-size={HEAP_MB}",
            "--no-warnings",
            str(script),
            str(per_file_ms),
        ]
        payload = json.dumps({"files": files, "entries": list(entries)})
        try:
            done = subprocess.run(
                command,
                input=payload,
                check=False,
                capture_output=True,
                text=True,
                env={},
                timeout=per_file_ms / 1000 * max(1, len(entries)) + 10,
            )
            stdout, crashed = done.stdout, done.returncode != 0
        except (
            subprocess.TimeoutExpired
        ) as exc:  # the vm's own timeout did not stop it: the process is killed
            out = exc.stdout or ""
            stdout, crashed = out.decode() if isinstance(out, bytes) else out, True
    values: dict[str, Any] = {}
    problems: list[SpecProblem] = []
    evaluating = ""
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if "evaluating" in item:
            evaluating = str(item["evaluating"])
        elif "error" in item:
            at = item.get("line") if isinstance(item.get("line"), int) else 0
            problems.append(SpecProblem(str(item.get("file")), at, "javascript", str(item["error"])))
            evaluating = ""
        elif "file" in item:
            values[str(item["file"])] = item.get("value")
            evaluating = ""
    if crashed and evaluating:
        problems.append(
            SpecProblem(
                evaluating,
                0,
                "javascript",
                f"stopped by the sandbox: it used more than {HEAP_MB} MB or more than its time",
            )
        )
    elif crashed and not problems:
        problems.append(SpecProblem(entries[0] if entries else "", 0, "javascript", "the sandbox failed"))
    return Evaluated(values, tuple(problems))

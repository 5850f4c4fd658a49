"""Running an agent CLI as a child process the engine fully controls.

An agent CLI starts helpers of its own (a Node wrapper, the native agent, sandboxed shell commands the
model asked for), so the CLI runs as the leader of its own process group and every stop targets the
group: SIGTERM first, SIGKILL after a grace period that ends as soon as the whole group is gone. What the
agent left running after it exited is stopped the same way, SIGTERM first: helpers may hold state outside
the call that only their exit handlers undo (a login shell's ``pyenv rehash`` holds a lock file in the
user's home; killed outright, it leaves the lock behind and every later login shell waits a minute for it).
Cancelling the coroutine, a timeout and a failing callback all take that path; nothing of the agent
outlives the call.

The environment is built, not inherited: the agent runs commands a model chose, so the worker's own
secrets (database and broker URLs, tokens) must not reach it. Only what a CLI needs to run (PATH, HOME,
locale, proxies and certificates) is passed, with the CLI's own variables (``OPENAI_*``, ``ANTHROPIC_*``...)
and what the engine adds explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deksdenflow_codex_worker.engines.base import EngineError, EngineNotInstalled, EngineTimeout

# One JSONL event can hold a whole command output; asyncio's default line limit (64 KiB) is too small.
MAX_LINE_BYTES = 64 * 1024 * 1024
STDERR_TAIL_BYTES = 16 * 1024
DEFAULT_KILL_GRACE_SECONDS = 5.0
# The shell's "command not found" status: an interpreter behind a wrapper script is missing.
EXIT_COMMAND_NOT_FOUND = 127

_PASSED_ENV = re.compile(
    r"PATH|HOME|USER|LOGNAME|SHELL|TERM|TZ|TMPDIR|LANG|LANGUAGE|LC_\w+"
    r"|(?i:https?_proxy|no_proxy|all_proxy)|SSL_CERT_FILE|SSL_CERT_DIR|NODE_EXTRA_CA_CERTS"
)


def agent_environment(
    extra: Mapping[str, str], *, passthrough_prefixes: Sequence[str] = ()
) -> dict[str, str]:
    """The environment of an agent process: the basics of ours, our variables whose names start with one
    of ``passthrough_prefixes`` (the CLI's own credentials and settings), then ``extra``."""
    prefixes = tuple(passthrough_prefixes)
    inherited = {k: v for k, v in os.environ.items() if _PASSED_ENV.fullmatch(k) or k.startswith(prefixes)}
    return {**inherited, **extra}


@dataclass(frozen=True)
class ProcessExit:
    """How an agent process ended: its exit status and the end of what it wrote on stderr."""

    returncode: int
    stderr_tail: str


LineCallback = Callable[[str], Awaitable[None]]


async def run_agent_process(
    argv: Sequence[str],
    *,
    engine_id: str,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes,
    on_line: LineCallback,
    timeout_seconds: float,
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
) -> ProcessExit:
    """Run ``argv`` to its end, feeding ``stdin`` and handing every stdout line to ``on_line``.

    Raises ``EngineNotInstalled`` when the binary cannot be started and ``EngineTimeout`` after
    ``timeout_seconds``. On any way out (timeout, cancellation, an error in ``on_line``) the process group
    is stopped before this returns or raises; after a normal exit, what the agent left running is killed.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=MAX_LINE_BYTES,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        if exc.filename is not None and os.fspath(exc.filename) == os.fspath(cwd):
            raise EngineError(f"the working directory {cwd} does not exist", engine=engine_id) from exc
        raise EngineNotInstalled(
            f"cannot start the {engine_id} CLI {argv[0]!r}: {exc.strerror or exc}",
            engine=engine_id,
            binary=argv[0],
        ) from exc

    # All three are pipes (see above); the checks only narrow their types.
    if proc.stdin is None or proc.stdout is None or proc.stderr is None:
        raise RuntimeError("the agent process was started without pipes")
    stderr = _Tail(STDERR_TAIL_BYTES)
    reader = asyncio.create_task(_read_lines(proc.stdout, on_line))
    drain = asyncio.create_task(_drain(proc.stderr, stderr))
    exited = asyncio.create_task(_exited(proc))
    helpers = [reader, drain, exited, asyncio.create_task(_feed(proc.stdin, stdin))]
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            await asyncio.wait((reader, exited), return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()  # an error of ``on_line`` ends the call here
            await exited
            # What the agent left running would keep the pipes open, and our reads waiting: end it. What
            # escaped the group (a new session) is not waited for beyond the grace period.
            await _stop_group(proc, kill_grace_seconds)
            await asyncio.wait((reader, drain), timeout=kill_grace_seconds)
            if reader.done():
                reader.result()
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise EngineTimeout(
            f"the {engine_id} agent did not finish within {timeout_seconds:g}s; it was stopped",
            engine=engine_id,
            timeout_seconds=timeout_seconds,
        ) from exc
    finally:
        try:
            await _stop_group(proc, kill_grace_seconds)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
    # (a process reaped by someone else left no code: unknown, which is not a success)
    code = proc.returncode if proc.returncode is not None else -1
    return ProcessExit(returncode=code, stderr_tail=stderr.text())


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the process itself to exit.

    Not ``proc.wait()``: that also waits for the pipes to close, which a leftover child can delay forever.
    """
    # No public hook tells the leader's exit apart from its pipes closing; a 50 ms poll costs nothing.
    while proc.returncode is None:
        if not _exists(proc.pid):  # reaped by someone else (asyncio then never learns its code)
            return
        await asyncio.sleep(0.05)


def _exists(pid: int) -> bool:
    """Whether ``pid`` is still a process (running, or a zombie not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _read_lines(pipe: asyncio.StreamReader, on_line: LineCallback) -> None:
    while line := await pipe.readline():
        await on_line(line.decode(errors="replace").rstrip("\r\n"))


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    """Write the prompt and close stdin; a CLI that exits without reading it is not our error."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.write(data)
        await pipe.drain()
        pipe.close()


class _Tail:
    """The last ``size`` bytes written: enough of stderr to explain a failure, bounded in memory."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        del self._data[: -self._size]

    def text(self) -> str:
        return self._data.decode(errors="replace").strip()


async def _drain(pipe: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await pipe.read(65536):
        tail.add(chunk)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _stop_group(proc: asyncio.subprocess.Process, grace_seconds: float) -> None:
    """Stop what is left of the process group (the leader's pid is the group id), leader or not.

    Every process of the group gets SIGTERM and ``grace_seconds`` to exit; then the group gets SIGKILL. The
    wait ends early once the leader has exited and nothing else of the group runs, so a group that stops
    on SIGTERM costs no grace period. SIGKILL is sent even if this coroutine is cancelled again while it
    waits.
    """
    # Descendants that left the group (a sandbox in a session of its own) are found by ancestry while the
    # leader still lives: once it is gone they belong to init, and "die with parent" has been seen to fail.
    escaped = _escaped_descendants(proc.pid)
    try:
        _signal_group(proc.pid, signal.SIGTERM)
        _signal_each(escaped, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_group_ended(proc), grace_seconds)
    finally:
        escaped |= _escaped_descendants(proc.pid)
        _signal_group(proc.pid, signal.SIGKILL)
        _signal_each(escaped, signal.SIGKILL)
    await _exited(proc)


def _signal_each(pids: set[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _escaped_descendants(root: int) -> set[int]:
    """Live descendants of ``root`` that are not in its process group (empty without procfs)."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return set()
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                state, ppid, pgrp = stat.read().rpartition(b")")[2].split()[:3]
        except (OSError, ValueError):
            continue
        if state not in (b"Z", b"X"):
            children.setdefault(int(ppid), []).append((pid, int(pgrp)))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child, group in children.get(todo.pop(), []):
            if child not in found:
                todo.append(child)
                if group != root:
                    found.add(child)
    return found


async def _group_ended(proc: asyncio.subprocess.Process) -> None:
    await _exited(proc)
    # No event tells when the last member of a group exits: poll, as ``_exited`` does.
    while _group_running(proc.pid):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs.

    Zombies do not count: they are dead, but stay members of the group until their parent (``init``, for
    the agent's orphans) reaps them, which some ``init`` processes do only now and then.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True  # no procfs to tell zombies apart: a member is there
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
                state, _ppid, pgrp = stat.read().rpartition(b")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == pgid and state not in (b"Z", b"X"):
            return True
    return False

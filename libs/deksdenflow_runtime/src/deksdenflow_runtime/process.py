"""Small process-management helpers shared by the embedded servers and the supervisor.

Every process we start is put in its own session (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops things in order) and is asked by the kernel to die with its parent (so a
supervisor killed with SIGKILL does not leave servers behind).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from deksdenflow_core.errors import ConfigurationError, InfrastructureError
from deksdenflow_core.logging import get_logger

_log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies (Linux only).

    Returns None elsewhere. The kernel sends the signal when the *thread* that forked exits, so callers
    must spawn from a long-lived thread (the event-loop thread), never from a short-lived worker thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    parent = os.getpid()

    def _preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would ever signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return _preexec


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``proc`` (it was started in its own session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


async def wait_exit(proc: subprocess.Popen[bytes], seconds: float, *, interval: float = 0.05) -> bool:
    """Wait up to ``seconds`` for ``proc`` to exit, without blocking the event loop; True if it did.

    Polling (reaping with ``poll``) works for any child, whichever thread or loop started it.
    """
    deadline = time.monotonic() + seconds
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def stop_process(
    proc: subprocess.Popen[bytes], *, name: str, first: signal.Signals, grace: float
) -> int | None:
    """Ask ``proc`` to stop with ``first``; SIGKILL its whole group if it is still there after ``grace`` s.

    Only the leader gets ``first``: it knows how to stop its own children (a postmaster stops its
    backends; a group-wide SIGINT would also reach them with another meaning). Returns the exit code
    (None only if even SIGKILL did not reap it, which should not happen).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        if not await wait_exit(proc, grace):
            _log.warning("process did not stop in time, killing it", process=name, pid=proc.pid)
            signal_group(proc, signal.SIGKILL)
            await wait_exit(proc, 5.0)
    # Stray members of the group (e.g. children of a service) must not outlive it either.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.poll()


def ensure_port_free(host: str, port: int, *, what: str, setting: str, alternative: str = "") -> None:
    """Raise a ConfigurationError naming ``setting`` if something already listens on ``host:port``.

    SO_REUSEADDR mirrors what the servers do themselves, so a port that only has connections in
    TIME_WAIT is not reported as taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            hint = f" Set {setting} to a free port" + (f", or {alternative}." if alternative else ".")
            raise ConfigurationError(
                f"Port {port} on {host} is already in use, so {what} cannot listen there.{hint}",
                host=host,
                port=port,
                setting=setting,
                reason=str(exc),
            ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for tests and ad-hoc servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class DirLock:
    """An exclusive, advisory lock file (flock) held for the lifetime of a server we own.

    It tells us that a server process found running on our data directory is an orphan of a crashed
    run (safe to stop), not a server that another live supervisor is using.
    """

    def __init__(self, path: Path, *, what: str) -> None:
        self.path = path
        self._what = what
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ConfigurationError saying who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigurationError(
                f"{self._what} is already in use by another process (pid {holder}); stop it first or use "
                "another data directory (DEKSDENFLOW_HOME).",
                lock=str(self.path),
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class ChildServer(abc.ABC):
    """What the embedded servers share: a child process we own and the lock on its data directory.

    Subclasses set ``_proc`` when they spawn, ``_lock``, ``stop_timeout``, and say how to stop
    (``_stop_signal``), what the process is called (``_process_name``) and what to log (``_label``).
    """

    _proc: subprocess.Popen[bytes] | None
    _lock: DirLock
    log_path: Path
    stop_timeout: float
    _stop_signal: signal.Signals
    _process_name: str
    _label: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the server and return once it is usable."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the server and release its data directory (idempotent)."""

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    async def wait(self) -> int:
        """Wait until the server process ends, for whatever reason; returns its exit code."""
        proc = self._proc
        if proc is None:
            raise InfrastructureError("the server is not running")
        await wait_exit(proc, math.inf, interval=0.5)
        return proc.returncode

    async def _stop_child(self) -> bool:
        """Stop the process (``_stop_signal``, SIGKILL after ``stop_timeout``), release the lock.

        Returns whether there was a process to stop. If interrupted (cancelled) before the server is
        gone, the server stays ours and the lock stays held, so a later stop finishes the job.
        """
        proc = self._proc
        if proc is not None:
            code = await stop_process(
                proc, name=self._process_name, first=self._stop_signal, grace=self.stop_timeout
            )
            _log.info(f"{self._label} stopped", code=code)
        self._proc = None
        self._lock.release()
        return proc is not None

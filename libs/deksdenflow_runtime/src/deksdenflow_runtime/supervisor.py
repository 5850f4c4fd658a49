"""The local supervisor behind ``deksdenflow run``.

It starts the embedded NATS and PostgreSQL (unless ``DEKSDENFLOW_NATS_URL`` / ``DEKSDENFLOW_DB_URL``
name existing servers), then each installed service as its own ``python -m <package>`` process with
the URLs in its environment, prefixes their output with the service name, and says where the API
listens once ``/health`` answers. On SIGINT/SIGTERM, or when a service dies, it stops the services
(SIGTERM, then SIGKILL), then PostgreSQL, then NATS: nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from deksdenflow_core.errors import ConfigurationError, DeksdenflowError, InfrastructureError
from deksdenflow_core.logging import get_logger
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, RuntimeSettings

from deksdenflow_runtime.embedded_nats import EmbeddedNats
from deksdenflow_runtime.embedded_pg import EmbeddedPostgres
from deksdenflow_runtime.process import cancel_and_wait, ensure_port_free, parent_death_signal

_log = get_logger(__name__)

_READ_LIMIT = 1 << 20  # service log lines can be long (JSON logs with tracebacks)


@dataclass(frozen=True)
class ServiceSpec:
    """A service the supervisor runs: a display name and the package run with ``python -m``."""

    name: str
    module: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("api", "deksdenflow_api"),
    ServiceSpec("projector", "deksdenflow_projector"),
    ServiceSpec("codex-worker", "deksdenflow_codex_worker"),
    ServiceSpec("git-ci-worker", "deksdenflow_git_ci_worker"),
)
API = "api"
_SELF = "deksdenflow"  # the prefix of the supervisor's own lines


def endpoints_file(home: Path) -> Path:
    """Where a running ``deksdenflow run`` records the NATS and PostgreSQL it uses."""
    return home / "run" / "endpoints.json"


def select_services(names: str) -> list[ServiceSpec]:
    """The services named in a comma-separated list (``DEKSDENFLOW_SERVICES``), in the canonical order."""
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    known = {spec.name for spec in SERVICES}
    if unknown := wanted - known:
        raise ConfigurationError(
            f"DEKSDENFLOW_SERVICES names unknown services {sorted(unknown)}; "
            f"known: {', '.join(sorted(known))}.",
            setting="DEKSDENFLOW_SERVICES",
        )
    return [spec for spec in SERVICES if spec.name in wanted]


class ServiceExited(DeksdenflowError):
    """A service process ended while the system was supposed to be running."""

    code = "service_exited"


class _Stopped(Exception):
    """Raised inside the supervisor when a stop signal interrupts the startup."""


class _Service:
    """A running service process and the task that copies its output, prefixed, to ours."""

    def __init__(self, spec: ServiceSpec, proc: asyncio.subprocess.Process, out: TextIO, width: int) -> None:
        if proc.stdout is None:
            raise ValueError("the service's output must be a pipe")
        self.spec = spec
        self.proc = proc
        self.exited = asyncio.create_task(proc.wait(), name=f"wait-{spec.name}")
        self._pump = asyncio.create_task(self._copy_output(proc.stdout, out, f"{spec.name:<{width}} | "))

    @staticmethod
    async def _copy_output(reader: asyncio.StreamReader, out: TextIO, prefix: str) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # EOF: flush a last unterminated line
                line = exc.partial
            except asyncio.LimitOverrunError as exc:  # an enormous line: pass it on in pieces
                line = await reader.read(exc.consumed)
            if not line:
                return
            out.write(prefix + line.decode(errors="replace").rstrip("\n") + "\n")
            out.flush()

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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pump, 2.0)
        return self.proc.returncode


def _installed(module: str) -> bool:
    # find_spec only locates the package; it is run in its own process, never imported here.
    return importlib.util.find_spec(module) is not None


def _probe_host(host: str) -> str:
    """Where to connect to reach a server bound to ``host`` (a wildcard address is not connectable)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _http_status(url: str, timeout: float) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own http:// URL)
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


class Supervisor:
    """Runs the whole system in the foreground until a signal or a failure; see the module docstring."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        api: ApiSettings,
        event_store: EventStoreSettings,
        database: DatabaseSettings,
        *,
        services: Sequence[ServiceSpec] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.runtime = runtime
        self.api = api
        self.home = runtime.home.expanduser().resolve()
        self.out = out or sys.stdout
        self.services = list(services) if services is not None else select_services(runtime.services)
        # Explicit URLs mean "use those servers"; only unset ones are replaced by embedded servers.
        self.nats_url = event_store.nats_url if "nats_url" in event_store.model_fields_set else None
        self.db_url = database.db_url if "db_url" in database.model_fields_set else None
        self._nats: EmbeddedNats | None = None
        self._pg: EmbeddedPostgres | None = None
        self._running: list[_Service] = []
        self._stop = asyncio.Event()
        self._first_signal_at = 0.0
        self._width = max([len(_SELF), *(len(s.name) for s in self.services)])

    def say(self, message: str) -> None:
        """Print a supervisor line, in the same prefixed format as the services' output."""
        for line in message.splitlines() or [""]:
            self.out.write(f"{_SELF:<{self._width}} | {line}\n")
        self.out.flush()

    def request_stop(self) -> None:
        """Ask the supervisor to stop everything (what SIGINT and SIGTERM do)."""
        self._stop.set()

    async def run(self) -> int:
        """Start everything, run until stopped, stop everything. Returns 0 after a requested stop.

        Raises ServiceExited if a service died, and the errors of the embedded servers (configuration,
        missing binaries, startup failures) — always after everything started so far was stopped.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._unless_stopped(self._start())
            await self._wait_healthy_and_announce()
            await self._watch()
            return 0
        except _Stopped:
            return 0
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = time.monotonic()
        if self._stop.is_set():
            # A terminal Ctrl-C under `uv run`/make arrives twice at once (the group's and the forwarded
            # one): only a later, deliberate repeat deserves an answer.
            if now - self._first_signal_at > 1.0:
                grace = self.runtime.stop_timeout_seconds
                self.say(f"{sig.name} received: still stopping (each step is killed after {grace:g}s)")
            return
        self._first_signal_at = now
        self.say(f"{sig.name} received: stopping (services, then PostgreSQL, then NATS)")
        self._stop.set()

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` but abandon it (cancelled, raising _Stopped) if a stop is requested meanwhile."""
        task = asyncio.create_task(work)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            # Servers being started clean up after themselves when cancelled (their stop() runs).
            await cancel_and_wait(task, self.runtime.stop_timeout_seconds)
            raise _Stopped
        task.result()

    # --- startup --------------------------------------------------------------------------------------

    async def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        missing = [s for s in self.services if not _installed(s.module)]
        for spec in missing:
            self.say(f"{spec.name}: package {spec.module} is not installed, skipping it")
        self.services = [s for s in self.services if s not in missing]
        if any(s.name == API for s in self.services):
            ensure_port_free(
                self.api.api_host, self.api.api_port, what="the API", setting="DEKSDENFLOW_API_PORT"
            )
        # Both servers start concurrently; a failure of one is raised as is (not as an ExceptionGroup)
        # once the other has finished starting, and the shutdown stops whichever did start.
        nats_url, db_url = await asyncio.gather(self._nats_url(), self._db_url(), return_exceptions=True)
        for result in (nats_url, db_url):
            if isinstance(result, BaseException):
                raise result
        self.nats_url, self.db_url = str(nats_url), str(db_url)
        env = {
            **os.environ,
            "DEKSDENFLOW_NATS_URL": self.nats_url,
            "DEKSDENFLOW_DB_URL": self.db_url,
            "DEKSDENFLOW_HOME": str(self.home),
            "DEKSDENFLOW_API_TOKEN": self._admin_token(),
            "DEKSDENFLOW_WEBHOOK_TOKEN": self._webhook_token(),
            # Seals the answers the API keeps for Idempotency-Key replays; kept so replays survive restarts.
            "DEKSDENFLOW_IDEMPOTENCY_SECRET": _kept_secret(
                self.api.idempotency_secret.get_secret_value(), self.home / "idempotency-secret"
            ),
            "PYTHONUNBUFFERED": "1",  # service output must reach us line by line, not in 8 KiB blocks
        }
        # Tools run next to the system (``deksdenflow projector rebuild``) find the servers here.
        self.endpoints_file.parent.mkdir(parents=True, exist_ok=True)
        self.endpoints_file.write_text(json.dumps({"nats_url": self.nats_url, "db_url": self.db_url}))
        for spec in self.services:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                spec.module,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                limit=_READ_LIMIT,
                start_new_session=True,  # a terminal Ctrl-C reaches only us; we stop services in order
                preexec_fn=parent_death_signal(signal.SIGTERM),  # spawned on the loop thread: see its doc
            )
            self._running.append(_Service(spec, proc, self.out, self._width))
            _log.info("service started", service=spec.name, pid=proc.pid)

    @property
    def token_file(self) -> Path:
        return self.home / "api-token"

    def _admin_token(self) -> str:
        """``DEKSDENFLOW_API_TOKEN`` if set; else a token kept in ``<home>/api-token`` (made on first run,
        readable by the owner only), so a local system is never open to anyone who can reach the port."""
        return _kept_secret(self.api.api_token.get_secret_value(), self.token_file)

    def _webhook_token(self) -> str:
        """``DEKSDENFLOW_WEBHOOK_TOKEN`` if set; else one kept in ``<home>/webhook-token``: the secret to
        give GitHub/GitLab webhooks and ``scripts/ci/report.sh``."""
        return _kept_secret(self.api.webhook_token.get_secret_value(), self.home / "webhook-token")

    async def _nats_url(self) -> str:
        if self.nats_url is not None:
            return self.nats_url
        self._nats = EmbeddedNats(
            self.home,
            host=self.runtime.embedded_nats_host,
            port=self.runtime.embedded_nats_port,
            startup_timeout=self.runtime.startup_timeout_seconds,
            stop_timeout=self.runtime.stop_timeout_seconds,
        )
        await self._nats.start()
        return self._nats.url

    async def _db_url(self) -> str:
        if self.db_url is not None:
            return self.db_url
        self._pg = EmbeddedPostgres(
            self.home,
            host=self.runtime.embedded_pg_host,
            port=self.runtime.embedded_pg_port,
            system_user=self.runtime.embedded_pg_system_user,
            startup_timeout=self.runtime.startup_timeout_seconds,
            stop_timeout=self.runtime.stop_timeout_seconds,
        )
        await self._pg.start()
        return self._pg.url

    async def _wait_healthy_and_announce(self) -> None:
        api_url = f"http://{_probe_host(self.api.api_host)}:{self.api.api_port}"
        if ":" in _probe_host(self.api.api_host):
            api_url = f"http://[{_probe_host(self.api.api_host)}]:{self.api.api_port}"
        has_api = any(s.spec.name == API for s in self._running)
        if has_api:
            # Readiness, not health: the system is announced once the read model serves what was
            # written before the start (a write and then a read right after work at once).
            await self._unless_stopped(self._wait_healthy(f"{api_url}/readyz"))
        api_line = (
            f"{api_url}  (ready: {api_url}/readyz, docs: {api_url}/docs)"
            if has_api
            else "not running (not installed, or not in DEKSDENFLOW_SERVICES)"
        )
        self.say(
            "\n".join(
                [
                    "deksdenflow is running",
                    f"  API         {api_line}",
                    f"  NATS        {self.nats_url}" + ("  (embedded)" if self._nats else ""),
                    f"  PostgreSQL  {self.db_url}" + ("  (embedded)" if self._pg else ""),
                    f"  Data        {self.home}",
                    *(
                        [
                            f"  Admin token in {self.token_file}:",
                            f'    curl -H "Authorization: Bearer $(cat {self.token_file})" '
                            f"{api_url}/projects",
                        ]
                        if has_api and not self.api.api_token.get_secret_value()
                        else []
                    ),
                    "Press Ctrl-C to stop.",
                ]
            )
        )

    async def _wait_healthy(self, url: str) -> None:
        started = time.monotonic()
        deadline = started + self.runtime.startup_timeout_seconds
        last: int | None = None
        while time.monotonic() < deadline:
            self._raise_if_a_service_exited()
            last = await asyncio.to_thread(_http_status, url, 2.0)
            if last == 200:
                _log.info("API healthy", seconds=round(time.monotonic() - started, 2))
                return
            await asyncio.sleep(0.2)
        raise InfrastructureError(
            f"The API did not report healthy at {url} within {self.runtime.startup_timeout_seconds:.0f}s "
            f"(last status: {last or 'no answer'}); see its output above.",
            url=url,
        )

    # --- running and stopping -------------------------------------------------------------------------

    def _raise_if_a_service_exited(self) -> None:
        for service in self._running:
            if service.exited.done():
                raise ServiceExited(
                    f"Service {service.spec.name!r} exited unexpectedly with code {service.proc.returncode}; "
                    f"everything was stopped. Its output is above, prefixed with '{service.spec.name} |'.",
                    service=service.spec.name,
                    exit_code=service.proc.returncode,
                )

    async def _watch(self) -> None:
        """Return on a stop request; raise if a service or an embedded server ends on its own."""
        stop = asyncio.create_task(self._stop.wait())
        servers = {
            asyncio.create_task(server.wait()): (name, server.log_path)
            for name, server in (("NATS", self._nats), ("PostgreSQL", self._pg))
            if server is not None
        }
        try:
            await asyncio.wait(
                {stop, *servers, *(s.exited for s in self._running)}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (stop, *servers):
                task.cancel()
        if self._stop.is_set():
            return
        self._raise_if_a_service_exited()
        for task, (name, log_path) in servers.items():
            if task.done() and not task.cancelled():
                raise ServiceExited(
                    f"The embedded {name} exited unexpectedly with code {task.result()}; everything was "
                    f"stopped. See {log_path}.",
                    service=name,
                    exit_code=task.result(),
                )

    @property
    def endpoints_file(self) -> Path:
        return endpoints_file(self.home)

    async def _shutdown(self) -> None:
        """Stop services (concurrently), then PostgreSQL, then NATS; each step runs even if one fails."""
        self.endpoints_file.unlink(missing_ok=True)
        grace = self.runtime.stop_timeout_seconds
        codes = await asyncio.gather(*(s.stop(grace) for s in self._running), return_exceptions=True)
        for service, code in zip(self._running, codes, strict=True):
            _log.info("service stopped", service=service.spec.name, code=code)
        self._running.clear()
        for server in (self._pg, self._nats):
            if server is not None:
                try:
                    await server.stop()
                except Exception:
                    _log.exception("failed to stop an embedded server")
        self._pg = self._nats = None


def _kept_secret(configured: str, file: Path) -> str:
    """``configured`` if set; else a random secret made once in ``file`` (owner-only) and reused."""
    if configured:
        return configured
    if not file.exists():
        file.write_text(secrets.token_urlsafe(32) + "\n")
        file.chmod(0o600)
    return file.read_text().strip()

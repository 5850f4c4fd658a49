"""The local supervisor behind ``deksdenflow run``.

It starts the embedded NATS and PostgreSQL (unless ``DEKSDENFLOW_NATS_URL`` / ``DEKSDENFLOW_DB_URL``
name existing servers) with the credentials kept in ``<home>/credentials.json``, provisions the stream,
then runs each installed service as its own ``python -m <package>`` process, each with its own NATS user
and only the URLs and secrets it needs (see ``nats_auth``), prefixes their output with the service name,
and says where the API listens once ``/health`` answers.

A service or embedded server that dies is logged (exit code or signal, its last lines) and started again
after a backoff (``restart``); only a crash loop makes the supervisor give up, stop everything and raise
ServiceExited. On SIGINT/SIGTERM it stops the services (SIGTERM, then SIGKILL), then PostgreSQL, then
NATS: nothing is left running.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.errors import ConfigurationError, DeksdenflowError, InfrastructureError
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.logging import get_logger
from deksdenflow_core.redact import redact_url
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, RuntimeSettings

from deksdenflow_runtime import nats_auth
from deksdenflow_runtime.credentials import (
    Credentials,
    credentials_file,
    ensure_credentials,
    kept_secret,
    with_userinfo,
)
from deksdenflow_runtime.embedded_nats import EmbeddedNats
from deksdenflow_runtime.embedded_pg import SUPERUSER, EmbeddedPostgres
from deksdenflow_runtime.endpoints import endpoints_file, write_endpoints
from deksdenflow_runtime.process import (
    ChildServer,
    ensure_port_free,
    parent_death_signal,
    tail,
)
from deksdenflow_runtime.restart import CrashHistory, RestartPolicy, describe_exit
from deksdenflow_runtime.service_process import ServiceProcess, ServiceSpec

__all__ = ["SERVICES", "ServiceExited", "ServiceSpec", "Supervisor", "endpoints_file", "select_services"]

_log = get_logger(__name__)

_READ_LIMIT = 1 << 20  # service log lines can be long (JSON logs with tracebacks)

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("api", "deksdenflow_api"),
    ServiceSpec("projector", "deksdenflow_projector"),
    ServiceSpec("codex-worker", "deksdenflow_codex_worker"),
    ServiceSpec("git-ci-worker", "deksdenflow_git_ci_worker"),
)
API = "api"
_SELF = "deksdenflow"  # the prefix of the supervisor's own lines
READER = "deksdenflow_reader"  # the read-only PostgreSQL role
# What each service logs in as on the embedded servers; a service without a PostgreSQL role gets no
# DEKSDENFLOW_DB_URL at all. The codex worker (the one that starts agent CLIs) has no database access.
_LOGINS: dict[str, tuple[str, str | None]] = {
    "api": (nats_auth.API, READER),
    "projector": (nats_auth.PROJECTOR, SUPERUSER),
    "codex-worker": (nats_auth.CODEX_WORKER, None),
    "git-ci-worker": (nats_auth.GIT_CI_WORKER, READER),
}
# Handed out by the supervisor, per service; never passed on from our own environment.
_HANDED_OUT = frozenset(
    {
        "DEKSDENFLOW_NATS_URL",
        "DEKSDENFLOW_DB_URL",
        "DEKSDENFLOW_API_TOKEN",
        "DEKSDENFLOW_WEBHOOK_TOKEN",
        "DEKSDENFLOW_IDEMPOTENCY_SECRET",
    }
)


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
    """A service or embedded server crashed in a loop; the supervisor gave up and stopped everything."""

    code = "service_exited"


class _Stopped(Exception):
    """Raised inside the supervisor when a stop signal interrupts the startup."""


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


def _indented(lines: Sequence[str]) -> str:
    return "\n".join(f"    {line}" for line in lines) if lines else "    (no output)"


class Supervisor:
    """Runs the whole system in the foreground until a signal or a crash loop; see the module docstring."""

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
        self.event_store = event_store
        self.home = runtime.home.expanduser().resolve()
        self.out = out or sys.stdout
        self.services = list(services) if services is not None else select_services(runtime.services)
        # Explicit URLs mean "use those servers"; only unset ones are replaced by embedded servers.
        self.nats_url = event_store.nats_url if "nats_url" in event_store.model_fields_set else None
        self.db_url = database.db_url if "db_url" in database.model_fields_set else None
        self.policy = RestartPolicy(
            initial_delay=runtime.restart_initial_delay_seconds,
            max_delay=runtime.restart_max_delay_seconds,
            stable_after=runtime.restart_stable_seconds,
            max_crashes=runtime.restart_max_crashes,
            window=runtime.restart_window_seconds,
        )
        self._credentials: Credentials | None = None
        # Per user (NATS) and role (PostgreSQL): URLs with that login, for the embedded servers only.
        self._nats_logins: dict[str, str] = {}
        self._pg_logins: dict[str, str] = {}
        self._nats: EmbeddedNats | None = None
        self._pg: EmbeddedPostgres | None = None
        self._running: dict[str, ServiceProcess] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._failure: ServiceExited | None = None
        self._failed = asyncio.Event()
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

        Raises ServiceExited on a crash loop, and the errors of the embedded servers (configuration,
        missing binaries, startup failures) — always after everything started so far was stopped.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._unless_stopped(self._start())
            await self._unless_stopped(self._wait_healthy_and_announce())
            await self._unless_stopped(self._failed.wait())
            raise AssertionError("unreachable: a failure raises")  # pragma: no cover
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

    async def _unless_stopped(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` but abandon it (cancelled) if a stop is requested (raising _Stopped) or the
        supervisor gave up (raising its ServiceExited) meanwhile."""
        task = asyncio.create_task(work)
        stop = asyncio.create_task(self._stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        try:
            await asyncio.wait({task, stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            failed.cancel()
        if self._failure is not None and not self._stop.is_set():
            await cancel_and_wait(task, self.runtime.stop_timeout_seconds)
            raise self._failure
        if not task.done():
            # Servers being started clean up after themselves when cancelled (their stop() runs).
            await cancel_and_wait(task, self.runtime.stop_timeout_seconds)
            raise _Stopped
        task.result()

    def _give_up(self, failure: ServiceExited) -> None:
        if self._failure is None:
            self._failure = failure
            self.say(failure.message)
            self._failed.set()

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
        if self._nats is not None:
            await self._provision()
        # Tools run next to the system (``deksdenflow projector rebuild``) find the servers here.
        write_endpoints(
            self.home,
            nats_url=self.nats_url,
            db_url=self.db_url,
            credentials=credentials_file(self.home),
            nats_user=nats_auth.TOOLS if self._nats else None,
            db_user=SUPERUSER if self._pg else None,
            api_url=self.api_url if any(s.name == API for s in self.services) else None,
        )
        for spec in self.services:
            await self._spawn(spec)
            self._keepers.append(asyncio.create_task(self._keep_service(spec), name=f"keep-{spec.name}"))
        for label, server in (("NATS", self._nats), ("PostgreSQL", self._pg)):
            if server is not None:
                self._keepers.append(asyncio.create_task(self._keep_server(label, server)))

    def _creds(self) -> Credentials:
        if self._credentials is None:
            self._credentials = ensure_credentials(
                self.home, nats_users=nats_auth.USERS, pg_roles=(SUPERUSER, READER)
            )
        return self._credentials

    def _service_env(self, name: str) -> dict[str, str]:
        """Our environment without what we hand out, plus what service ``name`` needs and nothing else."""
        env = {k: v for k, v in os.environ.items() if k not in _HANDED_OUT}
        env["DEKSDENFLOW_HOME"] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"  # service output must reach us line by line, not in 8 KiB blocks
        # A service we do not know (a test's) gets the addresses, but no login to an embedded server.
        nats_user, pg_role = _LOGINS.get(name, ("", ""))
        env["DEKSDENFLOW_NATS_URL"] = self._nats_logins.get(nats_user, self.nats_url or "")
        if pg_role is not None:
            env["DEKSDENFLOW_DB_URL"] = self._pg_logins.get(pg_role, self.db_url or "")
        if name == API:
            env["DEKSDENFLOW_API_TOKEN"] = self._admin_token()
            env["DEKSDENFLOW_WEBHOOK_TOKEN"] = self._webhook_token()
            # Seals the answers the API keeps for Idempotency-Key replays; kept so replays survive restarts.
            env["DEKSDENFLOW_IDEMPOTENCY_SECRET"] = kept_secret(
                self.api.idempotency_secret.get_secret_value(), self.home / "idempotency-secret"
            )
        return env

    async def _spawn(self, spec: ServiceSpec) -> ServiceProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            spec.module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._service_env(spec.name),
            limit=_READ_LIMIT,
            start_new_session=True,  # a terminal Ctrl-C reaches only us; we stop services in order
            preexec_fn=parent_death_signal(signal.SIGTERM),  # spawned on the loop thread: see its doc
        )
        service = ServiceProcess(spec, proc, self.out, self._width)
        self._running[spec.name] = service
        _log.info("service started", service=spec.name, pid=proc.pid)
        return service

    @property
    def token_file(self) -> Path:
        return self.home / "api-token"

    def _admin_token(self) -> str:
        """``DEKSDENFLOW_API_TOKEN`` if set; else a token kept in ``<home>/api-token`` (made on first run,
        readable by the owner only), so a local system is never open to anyone who can reach the port."""
        return kept_secret(self.api.api_token.get_secret_value(), self.token_file)

    def _webhook_token(self) -> str:
        """``DEKSDENFLOW_WEBHOOK_TOKEN`` if set; else one kept in ``<home>/webhook-token``: the secret to
        give GitHub/GitLab webhooks and ``scripts/ci/report.sh``."""
        return kept_secret(self.api.webhook_token.get_secret_value(), self.home / "webhook-token")

    async def _nats_url(self) -> str:
        if self.nats_url is not None:
            return self.nats_url
        passwords = self._creds().nats
        config = nats_auth.write_config(
            self.home / "run" / "nats.conf",
            passwords,
            self.event_store.stream_name,
            self.event_store.subject_prefix,
            nats_auth.Durables.from_environment(os.environ),
        )
        self._nats = EmbeddedNats(
            self.home,
            host=self.runtime.embedded_nats_host,
            port=self.runtime.embedded_nats_port,
            startup_timeout=self.runtime.startup_timeout_seconds,
            stop_timeout=self.runtime.stop_timeout_seconds,
            config=config,
            login=(nats_auth.SUPERVISOR, passwords[nats_auth.SUPERVISOR]),
        )
        await self._nats.start()
        self._nats_logins = {u: with_userinfo(self._nats.url, u, p) for u, p in passwords.items()}
        return self._nats.url

    async def _db_url(self) -> str:
        if self.db_url is not None:
            return self.db_url
        passwords = self._creds().postgres
        self._pg = EmbeddedPostgres(
            self.home,
            host=self.runtime.embedded_pg_host,
            port=self.runtime.embedded_pg_port,
            system_user=self.runtime.embedded_pg_system_user,
            startup_timeout=self.runtime.startup_timeout_seconds,
            stop_timeout=self.runtime.stop_timeout_seconds,
            password=passwords[SUPERUSER],
            reader=(READER, passwords[READER]),
        )
        await self._pg.start()
        self._pg_logins = {r: with_userinfo(self._pg.url, r, p) for r, p in passwords.items()}
        return self._pg.address  # without a password: services get their own login, and this is shown

    async def _provision(self) -> None:
        """Create or update the stream as the supervisor: no service user may change its configuration."""
        settings = self.event_store.model_copy(update={"nats_url": self._nats_logins[nats_auth.SUPERVISOR]})
        nc = await connect(settings, name="deksdenflow-supervisor")
        try:
            await JetStreamEventStore(nc, settings).provision()
        finally:
            await nc.close()

    @property
    def api_url(self) -> str:
        """Where the API answers on this machine (what the client and the announcement use)."""
        host = _probe_host(self.api.api_host)
        return f"http://[{host}]:{self.api.api_port}" if ":" in host else f"http://{host}:{self.api.api_port}"

    async def _wait_healthy_and_announce(self) -> None:
        api_url = self.api_url
        has_api = API in self._running
        if has_api:
            # Readiness, not health: the system is announced once the read model serves what was
            # written before the start (a write and then a read right after work at once).
            await self._wait_healthy(f"{api_url}/readyz")
        api_line = (
            f"{api_url}  (console: {api_url}/console, ready: {api_url}/readyz, docs: {api_url}/docs)"
            if has_api
            else "not running (not installed, or not in DEKSDENFLOW_SERVICES)"
        )
        logins = f"  (embedded; logins in {credentials_file(self.home)})"
        self.say(
            "\n".join(
                [
                    "deksdenflow is running",
                    f"  API         {api_line}",
                    f"  NATS        {redact_url(self.nats_url or '')}" + (logins if self._nats else ""),
                    f"  PostgreSQL  {redact_url(self.db_url or '')}" + (logins if self._pg else ""),
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

    # --- keeping things running -----------------------------------------------------------------------

    async def _keep_service(self, spec: ServiceSpec) -> None:
        """Start ``spec`` again whenever it dies, with backoff, until a stop or a crash loop."""
        history = CrashHistory(self.policy)
        while True:
            service = self._running[spec.name]
            code = await asyncio.shield(service.exited)
            if self._stop.is_set():
                return
            await service.stop(self.runtime.stop_timeout_seconds)  # its leftovers, and its last output
            why = describe_exit(code)
            _log.warning("service died", service=spec.name, cause=why, pid=service.proc.pid)
            self.say(f"{spec.name} died ({why}); its last lines:\n{_indented(list(service.last_lines))}")
            delay = history.record(service.started_at, time.monotonic())
            if delay is None:
                self._give_up(
                    self._crash_loop(
                        f"Service {spec.name!r}", history, why, f"above, prefixed with '{spec.name} |'"
                    )
                )
                return
            self.say(f"restarting {spec.name} in {delay:g}s")
            await asyncio.sleep(delay)
            if self._stop.is_set():
                return
            await self._spawn(spec)

    async def _keep_server(self, label: str, server: ChildServer) -> None:
        """Start an embedded server again (same port, same data) whenever it dies, with backoff."""
        history = CrashHistory(self.policy)
        log_path = server.log_path
        started = time.monotonic()
        while True:
            why = describe_exit(await server.wait())
            if self._stop.is_set():
                return
            _log.warning("embedded server died", server=label, cause=why)
            last = _indented(tail(log_path, 10).splitlines())
            self.say(f"the embedded {label} died ({why}); last lines of {log_path}:\n{last}")
            restarted = False
            while not restarted:
                await server.stop()  # reaps it, kills what is left of its group, releases its data directory
                delay = history.record(started, time.monotonic())
                if delay is None:
                    self._give_up(self._crash_loop(f"The embedded {label}", history, why, f"in {log_path}"))
                    return
                self.say(f"restarting the embedded {label} in {delay:g}s (same port, same data)")
                await asyncio.sleep(delay)
                if self._stop.is_set():
                    return
                started = time.monotonic()
                restarted = await self._try(server.start, label)
            self.say(f"the embedded {label} is back")

    async def _try(self, start: Callable[[], Awaitable[None]], label: str) -> bool:
        try:
            await start()
        except DeksdenflowError as exc:
            self.say(f"the embedded {label} did not start again: {exc.message}")
            return False
        return True

    def _crash_loop(self, what: str, history: CrashHistory, why: str, where: str) -> ServiceExited:
        window = self.policy.window
        return ServiceExited(
            f"{what} crashed {history.crashes_in_window} times within {window:g}s (last: {why}); giving up: "
            f"everything is being stopped. Its output is {where}.",
            service=what,
            cause=why,
        )

    # --- stopping -------------------------------------------------------------------------------------

    @property
    def endpoints_file(self) -> Path:
        return endpoints_file(self.home)

    async def _shutdown(self) -> None:
        """Stop services (concurrently), then PostgreSQL, then NATS; each step runs even if one fails."""
        self._stop.set()  # keepers that are still running must not start anything again
        await asyncio.gather(
            *(cancel_and_wait(keeper, self.runtime.stop_timeout_seconds) for keeper in self._keepers)
        )
        self._keepers.clear()
        self.endpoints_file.unlink(missing_ok=True)
        grace = self.runtime.stop_timeout_seconds
        running = list(self._running.values())
        codes = await asyncio.gather(*(s.stop(grace) for s in running), return_exceptions=True)
        for service, code in zip(running, codes, strict=True):
            _log.info("service stopped", service=service.spec.name, code=code)
        self._running.clear()
        for server in (self._pg, self._nats):
            if server is not None:
                try:
                    await server.stop()
                except Exception:
                    _log.exception("failed to stop an embedded server")
        self._pg = self._nats = None

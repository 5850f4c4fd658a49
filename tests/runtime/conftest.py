"""Fixtures of the runtime tests."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from deksdenflow_runtime.embedded import free_port

from tests.runtime.cli_support import cli_env
from tests.runtime.run_support import Ports


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh data directory (DEKSDENFLOW_HOME) for one test.

    Not tmp_path: short paths keep PostgreSQL's Unix socket path under its length limit, and when we run
    as root the server user needs search permission on every parent, which pytest's private
    directories do not give (see tests/conftest.py).
    """
    path = Path(tempfile.mkdtemp(prefix="deksdenflow-home-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on (the kernel accepts connections; nothing ever answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port: int = sock.getsockname()[1]
        yield port


@pytest.fixture
def ports() -> Ports:
    return Ports(nats=free_port(), pg=free_port(), api=free_port())


@pytest.fixture
def env(home: Path, ports: Ports) -> dict[str, str]:
    return cli_env(
        DEKSDENFLOW_HOME=str(home),
        DEKSDENFLOW_EMBEDDED_NATS_PORT=str(ports.nats),
        DEKSDENFLOW_EMBEDDED_PG_PORT=str(ports.pg),
        DEKSDENFLOW_API_PORT=str(ports.api),
        # Services with a port of their own must not collide with a developer's running system, nor with
        # another whole system a test runs at the same time.
        DEKSDENFLOW_PROJECTOR_PORT=str(free_port()),
        DEKSDENFLOW_CODEX_WORKER_PORT=str(free_port()),
        DEKSDENFLOW_GIT_CI_WORKER_PORT=str(free_port()),
    )

"""The API as a real process (``python -m deksdenflow_api``): serve, drain on SIGTERM, fail fast."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
from deksdenflow_runtime.embedded import free_port

from tests.runtime.cli_support import cli_env
from tests.support import eventually


def _api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deksdenflow_api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def test_the_api_serves_health_and_drains_on_sigterm(
    nats_url: str, fresh_db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    proc = _api(
        cli_env(
            DEKSDENFLOW_NATS_URL=nats_url, DEKSDENFLOW_DB_URL=fresh_db_url, DEKSDENFLOW_API_PORT=str(port)
        ),
        log,
    )
    try:

        async def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, within=30, what="the API to answer 200")
        proc.send_signal(signal.SIGTERM)
        try:
            # its closes are bounded (NATS drain, NATS close, the pool: 5 s each); room for a busy machine
            await eventually(lambda: proc.poll() is not None, within=30, what="the API to stop")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{log.read_text()}") from None
    finally:
        proc.kill()
        proc.wait()
    # uvicorn re-raises the signal once it has shut down gracefully, hence -SIGTERM rather than 0.
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


async def test_the_api_exits_promptly_when_its_port_is_taken_and_nats_is_unreachable(
    pg_admin_url: str, taken_port: int, tmp_path: Path
) -> None:
    # Regression: the background NATS connect swallowed its cancellation, so the process never exited.
    log = tmp_path / "api.log"
    proc = _api(
        cli_env(
            DEKSDENFLOW_NATS_URL=f"nats://127.0.0.1:{free_port()}",
            DEKSDENFLOW_DB_URL=pg_admin_url,
            DEKSDENFLOW_API_PORT=str(taken_port),
        ),
        log,
    )
    try:
        await eventually(lambda: proc.poll() is not None, within=15, what="the API to give up")
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1, log.read_text()
    assert "address already in use" in log.read_text()

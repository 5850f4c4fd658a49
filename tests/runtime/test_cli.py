"""``deksdenflow`` exit codes and messages for usage and configuration errors (real processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deksdenflow_runtime.embedded import free_port

from tests.runtime.cli_support import cli_env, deksdenflow_command


def _run(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*deksdenflow_command(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(cli_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: deksdenflow" in result.stderr.lower()  # the API client (click) answers a bare command


def test_an_invalid_setting_is_a_configuration_error(tmp_path: Path) -> None:
    result = _run(cli_env(DEKSDENFLOW_API_PORT="not-a-port"), "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "api_port" in result.stderr


def test_an_unknown_service_is_a_configuration_error(tmp_path: Path) -> None:
    result = _run(cli_env(DEKSDENFLOW_SERVICES="api,bogus"), "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "DEKSDENFLOW_SERVICES names unknown services ['bogus']" in result.stderr


def test_a_taken_api_port_is_reported_before_anything_starts(tmp_path: Path, taken_port: int) -> None:
    home = tmp_path / "home"
    result = _run(
        cli_env(DEKSDENFLOW_HOME=str(home), DEKSDENFLOW_API_PORT=str(taken_port), DEKSDENFLOW_SERVICES="api"),
        "run",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert f"Port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "DEKSDENFLOW_API_PORT" in result.stderr
    assert not (home / "postgres").exists()


def test_a_taken_embedded_nats_port_names_the_setting(tmp_path: Path, home: Path, taken_port: int) -> None:
    env = cli_env(
        DEKSDENFLOW_HOME=str(home),
        DEKSDENFLOW_SERVICES="",
        DEKSDENFLOW_EMBEDDED_NATS_PORT=str(taken_port),
        DEKSDENFLOW_EMBEDDED_PG_PORT=str(free_port()),
    )
    result = _run(env, "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"Port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "DEKSDENFLOW_EMBEDDED_NATS_PORT" in result.stderr

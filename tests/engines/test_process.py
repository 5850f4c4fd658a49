"""Running an agent CLI as a process group: output, stop on cancel/timeout/error, nothing left behind.

Plain shell commands stand in for the CLI here, so each case is quick and exact; the engine tests show
the same with the real CLIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from deksdenflow_codex_worker.engines.base import EngineError, EngineNotInstalled, EngineTimeout
from deksdenflow_codex_worker.engines.process import ProcessExit, agent_environment, run_agent_process

from tests.engines.helpers import Descendants, alive, processes_started_since
from tests.support import eventually


async def sh(
    script: str,
    tmp_path: Path,
    *,
    lines: list[str] | None = None,
    stdin: bytes = b"",
    timeout_seconds: float = 30,
    grace: float = 5,
) -> ProcessExit:
    async def collect(line: str) -> None:
        if lines is not None:
            lines.append(line)

    return await run_agent_process(
        ["sh", "-c", script],
        engine_id="test",
        cwd=tmp_path,
        env=agent_environment({}),
        stdin=stdin,
        on_line=collect,
        timeout_seconds=timeout_seconds,
        kill_grace_seconds=grace,
    )


async def test_lines_stdin_exit_code_and_stderr(tmp_path: Path) -> None:
    lines: list[str] = []

    exit_ = await sh(
        'cat; echo; pwd; echo "went wrong" >&2; exit 3', tmp_path, lines=lines, stdin=b"the prompt"
    )

    assert lines == ["the prompt", str(tmp_path)]
    assert exit_ == ProcessExit(returncode=3, stderr_tail="went wrong")


async def test_cancel_stops_the_whole_group(tmp_path: Path) -> None:
    since = Descendants()
    task = asyncio.create_task(sh("sleep 301 & sleep 302 & wait", tmp_path))
    await eventually(lambda: len(processes_started_since(since)) == 3, what="the shell and its two sleeps")
    spawned = processes_started_since(since)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await eventually(lambda: alive(spawned) == [], what=f"{alive(spawned)} to end")


async def test_cancel_also_stops_descendants_that_left_the_group(tmp_path: Path) -> None:
    # A sandbox in a session of its own (as the Codex CLI starts one) is outside the group signals reach.
    since = Descendants()
    task = asyncio.create_task(sh("setsid sleep 304 & wait", tmp_path))
    await eventually(lambda: len(processes_started_since(since)) == 2, what="shell and setsid sleep")
    spawned = processes_started_since(since)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await eventually(lambda: alive(spawned) == [], within=30, what=f"{alive(spawned)} to end")


async def test_a_group_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    since = Descendants()
    # An ignored SIGTERM is inherited: neither the shell nor its sleep will stop on it.
    task = asyncio.create_task(sh("trap '' TERM; sleep 303 & wait", tmp_path, grace=0.5))
    await eventually(lambda: len(processes_started_since(since)) == 2, what="the shell and its sleep")
    spawned = processes_started_since(since)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Killed once the grace period was over, not when the sleep would have ended (303 s): the upper bound
    # only tells the two apart, with room for a busy machine.
    assert 0.4 < time.monotonic() - cancelled_at < 60
    # SIGKILL was sent to the group; the kernel ends its processes a moment later on a busy machine.
    await eventually(lambda: alive(spawned) == [], what=f"{alive(spawned)} to end")


async def test_what_the_agent_leaves_running_is_killed_when_it_exits(tmp_path: Path) -> None:
    since = Descendants()
    started = time.time()
    lines: list[str] = []

    # The background sleep keeps stdout open: without the group kill the read would wait for it.
    exit_ = await sh("sleep 304 & echo done", tmp_path, lines=lines, timeout_seconds=10)

    assert exit_.returncode == 0
    assert lines == ["done"]
    assert time.time() - started < 60  # not the 304 s of the sleep that kept stdout open
    await eventually(lambda: alive(processes_started_since(since)) == [], what="the leftover sleep to end")


# A helper like ``pyenv rehash`` in a login shell's start-up files: it holds a lock file that only its exit
# trap removes, and that takes a moment (the helper is busy in a child, the cleanup runs a command).
LOCK_HOLDER = """\
trap 'sleep 0.3; rm -f "$1"' EXIT
echo held > "$1"
while :; do sleep 0.1; done
"""


@pytest.mark.parametrize("agent", ["exit 0", "sleep 307"], ids=["the agent exits", "the call is cancelled"])
async def test_helpers_left_running_get_sigterm_and_time_to_clean_up(tmp_path: Path, agent: str) -> None:
    (tmp_path / "helper.sh").write_text(LOCK_HOLDER)
    lock = tmp_path / "held.lock"
    lines: list[str] = []
    since = Descendants()
    started = time.time()

    task = asyncio.create_task(
        sh(
            f"bash helper.sh {lock} & until [ -e {lock} ]; do sleep 0.01; done; echo working; {agent}",
            tmp_path,
            lines=lines,
        )
    )
    await eventually(lambda: lines == ["working"], what="the helper to take its lock")
    if agent.startswith("sleep"):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert not lock.exists()  # SIGKILL would have left it
    assert time.time() - started < 4  # the grace period ends with the group, not after its 5 s
    assert alive(processes_started_since(since)) == []


async def test_timeout_stops_the_group_and_is_retryable(tmp_path: Path) -> None:
    since = Descendants()

    with pytest.raises(EngineTimeout) as caught:
        await sh("sleep 305", tmp_path, timeout_seconds=0.5)

    assert caught.value.retryable
    assert caught.value.fields["timeout_seconds"] == 0.5
    assert alive(processes_started_since(since)) == []


async def test_an_error_of_the_line_callback_stops_the_process(tmp_path: Path) -> None:
    since = Descendants()

    async def explode(line: str) -> None:
        raise ValueError(f"cannot take {line!r}")

    with pytest.raises(ValueError, match="cannot take 'first'"):
        await run_agent_process(
            ["sh", "-c", "echo first; sleep 306"],
            engine_id="test",
            cwd=tmp_path,
            env=agent_environment({}),
            stdin=b"",
            on_line=explode,
            timeout_seconds=30,
        )

    assert alive(processes_started_since(since)) == []


async def test_a_binary_that_cannot_start_is_a_missing_dependency(tmp_path: Path) -> None:
    not_executable = tmp_path / "agent"
    not_executable.write_text("#!/bin/sh\n")

    for binary in (str(tmp_path / "missing-agent"), str(not_executable)):
        with pytest.raises(EngineNotInstalled) as caught:
            await run_agent_process(
                [binary],
                engine_id="test",
                cwd=tmp_path,
                env={},
                stdin=b"",
                on_line=lambda line: asyncio.sleep(0),
                timeout_seconds=5,
            )
        assert caught.value.fields["binary"] == binary
        assert not caught.value.retryable


async def test_a_missing_workdir_is_not_a_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="working directory") as caught:
        await sh("true", tmp_path / "gone")

    assert not isinstance(caught.value, EngineNotInstalled)


def test_agent_environment_keeps_the_basics_and_drops_the_workers_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEKSDENFLOW_DB_URL", "postgresql://secret@db/x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("https_proxy", "http://proxy:3128")

    env = agent_environment({"CODEX_HOME": "/x"}, passthrough_prefixes=("OPENAI_",))

    assert "DEKSDENFLOW_DB_URL" not in env
    assert env["OPENAI_API_KEY"] == "sk-test"
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["https_proxy"] == "http://proxy:3128"
    assert env["PATH"]
    assert env["CODEX_HOME"] == "/x"
    assert "OPENAI_API_KEY" not in agent_environment({})


async def test_a_cancel_while_the_process_is_being_set_up_stops_its_whole_group(tmp_path: Path) -> None:
    # asyncio cancelled mid-setup kills the leader only, then waits for its pipes to close: a child of the
    # leader holding them would keep the cancelled call waiting for as long as it lives.
    since = Descendants()
    task = asyncio.create_task(sh("sleep 306 & wait", tmp_path))
    while not processes_started_since(since):  # noqa: ASYNC110 - no event tells a spawn
        await asyncio.sleep(0)  # until the leader is spawned: the setup now waits for its pipes
    deadline = time.monotonic() + 60
    while len(processes_started_since(since)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # noqa: ASYNC251 - the loop must not run: the setup stays unfinished
    spawned = processes_started_since(since)
    assert len(spawned) == 2, "the shell and its sleep"

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    await eventually(lambda: alive(spawned) == [], within=5, what=f"{alive(spawned)} to end")

"""The codex engine driving the real Codex CLI (pinned npm install) against a fake Responses API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_codex_worker.engines.base import (
    AgentResult,
    CallPhase,
    EngineError,
    EngineNotInstalled,
    EngineTimeout,
    Progress,
    Sandbox,
    TokenCounts,
)
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    Usage,
    add_file,
    apply_patch,
    codex_provider_args,
    codex_provider_env,
    developer_text,
    output_schema,
    tool_outputs,
    update_file,
    user_text,
)

from tests.engines.helpers import (
    Descendants,
    alive,
    command_lines_since,
    entries,
    git,
    make_call,
    processes_started_since,
)
from tests.support import eventually

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["PASS", "FAIL"]}, "findings": {"type": "array"}},
    "required": ["verdict", "findings"],
    "additionalProperties": False,
}


async def run(engine: CodexEngine, workdir: Path, prompt: str = "Say hello.", **kwargs: Any) -> AgentResult:
    return await engine.run(make_call(workdir, prompt, model=CODEX_TEST_MODEL, **kwargs))


async def test_message_and_usage_come_from_the_cli(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path, codex_home_root: Path
) -> None:
    responses_api.push(Turn.message("Hello there.", usage=Usage(1200, 200, 80, 16)))

    result = await run(codex, worktree, "Say hello to the team.")

    assert result.ok
    assert result.last_message == "Hello there."
    assert result.usage == TokenCounts(
        input_tokens=1200, cached_input_tokens=200, output_tokens=80, reasoning_output_tokens=16
    )
    assert result.changed_files == ()
    [call] = responses_api.calls
    assert user_text(call) == "Say hello to the team."
    assert "Codex" in developer_text(call)
    assert call["model"] == CODEX_TEST_MODEL
    assert call["stream"] is True
    assert entries(codex_home_root) == []  # the call's CODEX_HOME is gone


async def test_output_schema_reaches_the_model_and_the_json_is_the_last_message(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    verdict = {"verdict": "PASS", "findings": []}
    responses_api.push(Turn.json(verdict))

    result = await run(codex, worktree, "Check step 01.", phase=CallPhase.QA, output_schema=VERDICT_SCHEMA)

    assert result.ok
    assert json.loads(result.last_message) == verdict
    [call] = responses_api.calls
    assert output_schema(call) == VERDICT_SCHEMA
    assert call["text"]["format"]["type"] == "json_schema"


async def test_patch_in_workspace_write_changes_the_worktree(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    patch = apply_patch(
        add_file("src/hello.py", "print('hello')\n"), update_file("README.md", "# demo", "# Demo")
    )
    responses_api.push(Turn.patch(patch), Turn.message("Added src/hello.py.", usage=Usage(10, 0, 5, 0)))
    seen: list[Progress] = []

    async def on_progress(progress: Progress) -> None:
        seen.append(progress)

    result = await codex.run(
        make_call(worktree, "Add hello.py", model=CODEX_TEST_MODEL, sandbox=Sandbox.WORKSPACE_WRITE),
        on_progress,
    )

    assert result.ok, result.error
    assert result.last_message == "Added src/hello.py."
    assert (worktree / "src" / "hello.py").read_text() == "print('hello')\n"
    assert (worktree / "README.md").read_text() == "# Demo\n"
    assert sorted(result.changed_files) == ["README.md", "src/hello.py"]
    assert git(worktree, "status", "--porcelain").splitlines() == [" M README.md", "?? src/"]
    assert [p.kind for p in seen] == ["file_change", "message"]
    # The CLI sent the tool's output back with the call id, in a second request.
    first, second = responses_api.calls
    assert "Success" in next(iter(tool_outputs(second).values()))
    assert tool_outputs(first) == {}


async def test_shell_command_runs_in_the_worktree_and_is_reported(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    responses_api.push(Turn.shell("echo built > out.txt && cat README.md"), Turn.message("done"))
    seen: list[Progress] = []

    async def on_progress(progress: Progress) -> None:
        seen.append(progress)

    result = await codex.run(make_call(worktree, "Build.", model=CODEX_TEST_MODEL), on_progress)

    assert result.ok
    assert (worktree / "out.txt").read_text() == "built\n"
    [command] = [p for p in seen if p.kind == "command"]
    assert "echo built" in command.text
    assert command.data["exit_code"] == 0
    assert "# demo" in command.data["aggregated_output"]


async def test_read_only_sandbox_refuses_edits(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    responses_api.push(
        Turn.patch(apply_patch(add_file("evil.txt", "nope")), call_id="call_patch"),
        Turn.shell("echo nope > evil2.txt", call_id="call_shell"),
        Turn.message("I could not write."),
    )

    result = await run(codex, worktree, "Review only.", sandbox=Sandbox.READ_ONLY)

    assert result.ok
    assert not (worktree / "evil.txt").exists()
    assert not (worktree / "evil2.txt").exists()
    assert result.changed_files == ()
    assert git(worktree, "status", "--porcelain") == ""
    outputs = tool_outputs(responses_api.calls[-1])  # the whole conversation is re-sent
    assert "read-only sandbox" in outputs["call_patch"]
    assert "Read-only file system" in outputs["call_shell"]


async def test_failed_turn_of_the_model_is_a_failed_result(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    responses_api.push(Turn.failed("prompt too long", code="context_length_exceeded"))

    result = await run(codex, worktree)

    assert not result.ok
    assert "context window" in result.error
    assert result.exit_code == 1
    assert result.last_message == ""


@pytest.mark.parametrize(
    "turn", [Turn.http_error(500), Turn.failed("server_error"), Turn.cut()], ids=["http-500", "failed", "cut"]
)
async def test_model_service_trouble_is_a_retryable_engine_error(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path, turn: Turn
) -> None:
    responses_api.push(turn)

    with pytest.raises(EngineError) as caught:
        await run(codex, worktree)

    assert caught.value.retryable
    assert caught.value.fields["engine"] == "codex"


async def test_wrong_api_key_is_a_permanent_engine_error(
    codex_bin: str, codex_home_root: Path, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    engine = CodexEngine(
        codex_bin,
        codex_home_root=codex_home_root,
        extra_args=codex_provider_args(responses_api),
        env={**codex_provider_env(responses_api), "DEKSDENFLOW_FAKE_OPENAI_KEY": "wrong"},
    )
    responses_api.push(Turn.message("never sent"))

    with pytest.raises(EngineError, match="401") as caught:
        await run(engine, worktree)

    assert not caught.value.retryable
    assert responses_api.calls == []  # refused before the fake answered anything
    assert responses_api.pending() == 1


async def test_model_server_down_fails_fast(codex_bin: str, codex_home_root: Path, worktree: Path) -> None:
    with FakeResponsesApi() as fake:
        args, env = codex_provider_args(fake), codex_provider_env(fake)
    engine = CodexEngine(codex_bin, codex_home_root=codex_home_root, extra_args=args, env=env)

    started = time.monotonic()
    with pytest.raises(EngineError) as caught:
        await run(engine, worktree)

    assert time.monotonic() - started < 10
    assert caught.value.retryable
    assert "Connection failed" in caught.value.message


async def test_cancelling_the_call_kills_the_cli_and_its_commands(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path, codex_home_root: Path
) -> None:
    # The model asks for a long command; the CLI runs it in its sandbox; then we cancel.
    responses_api.push(Turn.shell("sleep 77.5"), Turn.message("never"))
    since = Descendants()
    task = asyncio.create_task(run(codex, worktree))

    def sleeping() -> bool:
        return any("77.5" in line for line in command_lines_since(since))

    await eventually(sleeping, within=20, what="the sandboxed command to run")
    spawned = processes_started_since(since)
    assert len(spawned) >= 2  # the CLI and its command, at least

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - cancelled_at < 8
    # The CLI's group is gone at once; its sandbox runs in a session of its own and is tied to its parent
    # (die-with-parent), so it ends a moment later.
    await eventually(lambda: alive(spawned) == [], within=5, what=f"{alive(spawned)} to end")
    assert entries(codex_home_root) == []


async def test_cancelling_while_the_model_streams_kills_the_cli(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    responses_api.push(Turn.message("slow").held(60))
    since = Descendants()
    task = asyncio.create_task(run(codex, worktree))
    await eventually(lambda: len(responses_api.calls) == 1, within=20, what="the CLI to call the model")
    spawned = processes_started_since(since)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert spawned
    await eventually(lambda: alive(spawned) == [], within=5, what=f"{alive(spawned)} to end")


async def test_timeout_stops_the_cli_with_a_retryable_error(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path
) -> None:
    responses_api.push(Turn.message("slow").held(60))
    since = Descendants()
    started = time.time()

    with pytest.raises(EngineTimeout) as caught:
        await run(codex, worktree, timeout_seconds=1)

    assert caught.value.retryable
    assert time.time() - started < 10
    assert alive(processes_started_since(since)) == []  # nothing but the group ran


async def test_missing_binary_is_a_permanent_missing_dependency(
    codex_home_root: Path, worktree: Path
) -> None:
    engine = CodexEngine(str(worktree / "no-such-codex"), codex_home_root=codex_home_root)

    with pytest.raises(EngineNotInstalled, match="no-such-codex") as caught:
        await run(engine, worktree)

    assert not caught.value.retryable
    assert caught.value.code == "missing_dependency"


async def test_concurrent_calls_each_get_their_own_answer(
    codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Path, tmp_path: Path
) -> None:
    def answer(request: Mapping[str, Any]) -> Turn:
        prompt = user_text(request)
        if tool_outputs(request):
            return Turn.message(f"wrote {prompt}")
        return Turn.patch(apply_patch(add_file(f"{prompt}.txt", prompt)))

    responses_api.handler = answer
    workdirs = []
    for name in ("alpha", "beta", "gamma"):
        workdir = tmp_path / name
        workdir.mkdir()
        workdirs.append(workdir)

    results = await asyncio.gather(*(run(codex, w, w.name) for w in workdirs))

    assert [r.last_message for r in results] == ["wrote alpha", "wrote beta", "wrote gamma"]
    for workdir, result in zip(workdirs, results, strict=True):
        assert result.changed_files == (f"{workdir.name}.txt",)
        assert (workdir / f"{workdir.name}.txt").read_text() == f"{workdir.name}\n"


def test_argv_follows_the_cli_contract(codex_home_root: Path, worktree: Path) -> None:
    engine = CodexEngine("codex", codex_home_root=codex_home_root, extra_args=["-c", "x=1"])
    call = make_call(worktree, model="gpt-5.5", sandbox=Sandbox.READ_ONLY)

    plain = engine.argv(call, last_message=Path("/h/last"), schema=None)
    structured = engine.argv(call, last_message=Path("/h/last"), schema=Path("/h/schema.json"))

    assert plain == [
        "codex", "exec", "--json", "-o", "/h/last", "-C", str(worktree.resolve()), "-s", "read-only",
        "-m", "gpt-5.5", "--skip-git-repo-check", "--ephemeral", "--disable", "shell_snapshot",
        "-c", "x=1", "-",
    ]  # fmt: skip
    assert structured[5:7] == ["--output-schema", "/h/schema.json"]

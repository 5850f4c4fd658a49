"""The claude-code engine driving the real Claude Code CLI (pinned npm install) against a fake Messages
API."""

from __future__ import annotations

import asyncio
import json
import time
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
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_fakes.anthropic_api import (
    CLAUDE_TEST_MODEL,
    FakeAnthropicApi,
    Turn,
    Usage,
    claude_env,
    output_schema,
    system_text,
    tool_results,
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
    "$schema": "https://json-schema.org/draft/2020-12/schema",  # as the product's schemas say
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["PASS", "FAIL"]}},
    "required": ["verdict"],
    "additionalProperties": False,
}


async def run(
    engine: ClaudeCodeEngine,
    workdir: Path,
    prompt: str = "Say hello.",
    progress: list[Progress] | None = None,
    **kwargs: Any,
) -> AgentResult:
    async def on_progress(p: Progress) -> None:
        if progress is not None:
            progress.append(p)

    return await engine.run(make_call(workdir, prompt, model=CLAUDE_TEST_MODEL, **kwargs), on_progress)


async def test_message_usage_and_cost_come_from_the_cli(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path, claude_config_root: Path
) -> None:
    usage = Usage(
        input_tokens=1000, cache_read_input_tokens=300, cache_creation_input_tokens=100, output_tokens=50
    )
    anthropic_api.push(Turn.message("Hello there.", usage=usage))

    result = await run(claude, worktree, "Say hello to the team.")

    assert result.ok, result.error
    assert result.last_message == "Hello there."
    # Input counts every prompt token (cached and cache-written ones too), as the Codex CLI reports it.
    assert result.usage == TokenCounts(input_tokens=1400, cached_input_tokens=300, output_tokens=50)
    assert result.reported_cost_micro_usd > 0
    [call] = anthropic_api.calls
    assert user_text(call) == "Say hello to the team."
    assert "Claude" in system_text(call)
    assert call["model"] == CLAUDE_TEST_MODEL
    assert call["stream"] is True
    assert entries(claude_config_root) == []  # the call's config dir is gone


async def test_json_schema_is_answered_through_the_structured_output_tool(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    anthropic_api.push(Turn.structured({"verdict": "FAIL"}))

    result = await run(claude, worktree, "Check it.", phase=CallPhase.QA, output_schema=VERDICT_SCHEMA)

    assert result.ok, result.error
    assert json.loads(result.last_message) == {"verdict": "FAIL"}
    schema = output_schema(anthropic_api.calls[0])
    assert schema is not None
    assert schema["properties"] == VERDICT_SCHEMA["properties"]
    assert "$schema" not in schema  # the CLI refuses the 2020-12 meta-schema it does not know


async def test_edits_in_workspace_write_change_the_worktree(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    anthropic_api.push(
        Turn.write(str(worktree / "src" / "hello.py"), "print('hello')\n"),
        Turn.bash("echo built > out.txt"),
        Turn.message("Added src/hello.py."),
    )
    progress: list[Progress] = []

    result = await run(claude, worktree, "Add hello.py", progress, sandbox=Sandbox.WORKSPACE_WRITE)

    assert result.ok, result.error
    assert result.last_message == "Added src/hello.py."
    assert (worktree / "src" / "hello.py").read_text() == "print('hello')\n"
    assert (worktree / "out.txt").read_text() == "built\n"
    assert result.changed_files == ("src/hello.py",)
    assert git(worktree, "status", "--porcelain").splitlines() == ["?? out.txt", "?? src/"]
    assert [(p.kind, p.text) for p in progress] == [
        ("file_change", "src/hello.py"),
        ("command", "echo built > out.txt"),
        ("message", "Added src/hello.py."),
    ]


async def test_read_only_denies_edits(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    anthropic_api.push(
        Turn.write(str(worktree / "evil.txt"), "nope", tool_id="toolu_write"),
        Turn.bash("echo nope > evil2.txt", tool_id="toolu_bash"),
        Turn.tool("Read", {"file_path": str(worktree / "README.md")}, tool_id="toolu_read"),
        Turn.message("I only read."),
    )

    result = await run(claude, worktree, "Review only.", sandbox=Sandbox.READ_ONLY)

    assert result.ok, result.error
    assert not (worktree / "evil.txt").exists()
    assert not (worktree / "evil2.txt").exists()
    assert result.changed_files == ()
    results = tool_results(anthropic_api.calls[-1])
    assert "denied" in results["toolu_write"]
    assert "# demo" in results["toolu_read"]


async def test_a_cut_stream_is_retried_by_the_cli_without_streaming(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    anthropic_api.push(Turn.cut(), Turn.message("recovered"))

    result = await run(claude, worktree)

    assert result.ok
    assert result.last_message == "recovered"
    assert [call["stream"] for call in anthropic_api.calls] == [True, False]


@pytest.mark.parametrize("status", [500, 529])
async def test_model_service_trouble_is_a_retryable_engine_error(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path, status: int
) -> None:
    anthropic_api.push(Turn.http_error(status, "busy"))

    with pytest.raises(EngineError, match=str(status)) as caught:
        await run(claude, worktree)

    assert caught.value.retryable
    assert caught.value.fields["api_error_status"] == status


async def test_a_rejected_request_is_a_failed_result(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    # The CLI may try a 400 again (how often depends on the message): reject every request.
    anthropic_api.handler = lambda request: Turn.http_error(400, "the request was rejected")

    result = await run(claude, worktree)

    assert not result.ok
    assert "the request was rejected" in result.error
    assert result.exit_code == 1


async def test_wrong_api_key_is_a_permanent_engine_error(
    claude_bin: str,
    claude_config_root: Path,
    claude_test_env: dict[str, str],
    anthropic_api: FakeAnthropicApi,
    worktree: Path,
) -> None:
    engine = ClaudeCodeEngine(
        claude_bin, config_root=claude_config_root, env={**claude_test_env, "ANTHROPIC_API_KEY": "wrong"}
    )
    anthropic_api.push(Turn.message("never sent"))

    with pytest.raises(EngineError, match="Invalid API key") as caught:
        await run(engine, worktree)

    assert not caught.value.retryable
    assert caught.value.fields["api_error_status"] == 401
    assert anthropic_api.pending() == 1


async def test_model_server_down_fails_fast(
    claude_bin: str, claude_config_root: Path, claude_home: Path, worktree: Path
) -> None:
    with FakeAnthropicApi() as fake:
        env = {**claude_env(fake), "HOME": str(claude_home)}
    engine = ClaudeCodeEngine(claude_bin, config_root=claude_config_root, env=env)

    started = time.monotonic()
    with pytest.raises(EngineError, match="Connection refused") as caught:
        await run(engine, worktree)

    assert time.monotonic() - started < 10
    assert caught.value.retryable


async def test_cancelling_the_call_kills_the_cli_and_its_commands(
    claude_bin: str,
    anthropic_api: FakeAnthropicApi,
    claude_test_env: dict[str, str],
    worktree: Path,
    claude_config_root: Path,
) -> None:
    # acceptEdits does not cover running a program: allow it, as an operator would.
    engine = ClaudeCodeEngine(
        claude_bin, config_root=claude_config_root, extra_args=["--allowedTools", "Bash"], env=claude_test_env
    )
    # (A plain long ``sleep`` is refused by the CLI itself.)
    anthropic_api.push(Turn.bash("python3 -c 'import time; time.sleep(78.5)'"), Turn.message("never"))
    since = Descendants()
    task = asyncio.create_task(run(engine, worktree, sandbox=Sandbox.WORKSPACE_WRITE))

    def sleeping() -> bool:
        return any("78.5" in line for line in command_lines_since(since))

    await eventually(sleeping, within=20, what="the command to run")
    spawned = processes_started_since(since)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - cancelled_at < 8
    await eventually(lambda: alive(spawned) == [], within=5, what=f"{alive(spawned)} to end")
    assert entries(claude_config_root) == []


async def test_timeout_stops_the_cli_with_a_retryable_error(
    claude: ClaudeCodeEngine, anthropic_api: FakeAnthropicApi, worktree: Path
) -> None:
    anthropic_api.push(Turn.message("slow").held(60))
    since = Descendants()
    started = time.time()

    with pytest.raises(EngineTimeout) as caught:
        await run(claude, worktree, timeout_seconds=1)

    assert caught.value.retryable
    assert time.time() - started < 10
    await eventually(lambda: alive(processes_started_since(since)) == [], within=5, what="the CLI to end")


async def test_missing_binary_is_a_permanent_missing_dependency(
    claude_config_root: Path, worktree: Path
) -> None:
    engine = ClaudeCodeEngine(str(worktree / "no-such-claude"), config_root=claude_config_root)

    with pytest.raises(EngineNotInstalled, match="no-such-claude") as caught:
        await run(engine, worktree)

    assert not caught.value.retryable


def test_argv_maps_sandboxes_to_permission_modes(claude_config_root: Path, worktree: Path) -> None:
    engine = ClaudeCodeEngine("claude", config_root=claude_config_root, extra_args=["--allowedTools", "Bash"])

    read_only = engine.argv(make_call(worktree, model="m", sandbox=Sandbox.READ_ONLY))
    write = engine.argv(make_call(worktree, model="m", output_schema=VERDICT_SCHEMA))

    assert read_only == [
        "claude", "-p", "--output-format", "stream-json", "--verbose", "--no-session-persistence",
        "--model", "m", "--permission-mode", "dontAsk", "--allowedTools", "Bash",
    ]  # fmt: skip
    # the schema as given, less the 2020-12 meta-schema the CLI's validator does not know
    forwarded = {k: v for k, v in VERDICT_SCHEMA.items() if k != "$schema"}
    assert write[9:12] == ["acceptEdits", "--json-schema", json.dumps(forwarded)]

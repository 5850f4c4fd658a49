"""The ``claude-code`` engine: the real Claude Code CLI in print mode, one process per call.

``claude -p --output-format stream-json --verbose`` prints one JSON object per line: the assistant's
messages (text and tool calls) and the tool results as they happen, which gives progress and changed
files, then a final ``result`` object (the same one ``--output-format json`` prints) with the result
text, ``structured_output`` for ``--json-schema``, usage, ``total_cost_usd`` and ``is_error``.

Sandbox modes map onto permission modes, since nobody answers permission prompts in print mode:
``read-only`` is ``dontAsk`` (reading tools only; anything that would need approval is denied) and
``workspace-write`` is ``acceptEdits`` (edits and file commands inside the workdir are accepted; other
commands that need approval are denied). Widen that with ``extra_args`` (e.g. ``--allowedTools Bash``).

Each call gets its own ``CLAUDE_CONFIG_DIR`` under ``config_root`` (removed afterwards): the CLI writes
settings, sessions and telemetry there, and concurrent calls must not share them. Credentials therefore
come from the environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``...): the worker's own, or ``env``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deksdenflow_codex_worker.engines.base import (
    AgentCall,
    AgentResult,
    EngineError,
    EngineNotInstalled,
    Progress,
    ProgressCallback,
    Sandbox,
    TokenCounts,
)
from deksdenflow_codex_worker.engines.failures import Failure, classify
from deksdenflow_codex_worker.engines.process import (
    DEFAULT_KILL_GRACE_SECONDS,
    EXIT_COMMAND_NOT_FOUND,
    ProcessExit,
    agent_environment,
    run_agent_process,
)

ENGINE_ID = "claude-code"
# The CLI's own variables (credentials, base URL, Bedrock/Vertex switches) that reach it from the worker's
# environment.
PASSTHROUGH = ("ANTHROPIC_", "CLAUDE_CODE_", "AWS_", "GOOGLE_", "CLOUD_ML_", "VERTEX_")

PERMISSION_MODES = {Sandbox.READ_ONLY: "dontAsk", Sandbox.WORKSPACE_WRITE: "acceptEdits"}
# Tools whose ``file_path`` input names the file they change.
EDITING_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
# What the CLI needs besides credentials: no update checks, telemetry or error reports from workers.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


class ClaudeCodeEngine:
    """Runs calls with ``claude -p``; ``extra_args`` are added after the engine's own flags."""

    def __init__(
        self,
        binary: str,
        *,
        config_root: Path,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
    ) -> None:
        self.binary = binary
        self.config_root = config_root
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.kill_grace_seconds = kill_grace_seconds

    @property
    def engine_id(self) -> str:
        return ENGINE_ID

    def argv(self, call: AgentCall) -> list[str]:
        """The ``claude`` command line of ``call`` (the prompt goes on stdin)."""
        argv = [self.binary, "-p", "--output-format", "stream-json", "--verbose", "--no-session-persistence"]
        argv += ["--model", call.model, "--permission-mode", PERMISSION_MODES[call.sandbox]]
        if call.output_schema is not None:
            # The CLI's validator knows no 2020-12 meta-schema and refuses a schema that names it (the
            # product's schemas do); the worker validates the answer against the full schema anyway.
            schema = {k: v for k, v in call.output_schema.items() if k != "$schema"}
            argv += ["--json-schema", json.dumps(schema)]
        return [*argv, *self.extra_args]

    async def run(self, call: AgentCall, on_progress: ProgressCallback | None = None) -> AgentResult:
        config_dir = _make_config_dir(self.config_root)
        try:
            events = ClaudeEvents(call.workdir, on_progress)
            exit_ = await run_agent_process(
                self.argv(call),
                engine_id=ENGINE_ID,
                cwd=call.workdir,
                env=agent_environment(
                    {**QUIET_ENV, **self.env, "CLAUDE_CONFIG_DIR": str(config_dir)},
                    passthrough_prefixes=PASSTHROUGH,
                ),
                stdin=call.prompt.encode(),
                on_line=events.feed,
                timeout_seconds=call.timeout_seconds,
                kill_grace_seconds=self.kill_grace_seconds,
            )
            return events.result(exit_)
        finally:
            shutil.rmtree(config_dir, ignore_errors=True)


def _make_config_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="claude-", dir=root))


class ClaudeEvents:
    """Folds the ``stream-json`` lines into progress reports and, at the end, a result."""

    def __init__(self, workdir: Path, on_progress: ProgressCallback | None) -> None:
        self._workdir = workdir.resolve()
        self._on_progress = on_progress
        self._edits: dict[str, str] = {}  # tool_use id -> file path, until its result arrives
        self.changed_files: list[str] = []
        self.final: Mapping[str, Any] | None = None

    async def feed(self, line: str) -> None:
        """Take one stdout line; lines that are not JSON objects are ignored."""
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        message = event.get("message")
        if kind == "result":
            self.final = event
        elif kind == "assistant" and isinstance(message, dict):
            for block in _blocks(message):
                await self._assistant_block(block)
        elif kind == "user" and isinstance(message, dict):
            for block in _blocks(message):
                if block.get("type") == "tool_result":
                    await self._tool_result(block)

    async def _assistant_block(self, block: Mapping[str, Any]) -> None:
        if block.get("type") == "text":
            await self._report(Progress("message", str(block.get("text", ""))))
            return
        if block.get("type") != "tool_use":
            return
        name = str(block.get("name", ""))
        raw_input = block.get("input")
        tool_input: Mapping[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        if name == "Bash":
            await self._report(Progress("command", str(tool_input.get("command", "")), {"tool": name}))
        elif name in EDITING_TOOLS and isinstance(tool_input.get("file_path"), str):
            self._edits[str(block.get("id"))] = tool_input["file_path"]
        else:
            await self._report(Progress("tool", name, {"input": tool_input}))

    async def _tool_result(self, block: Mapping[str, Any]) -> None:
        path = self._edits.pop(str(block.get("tool_use_id")), None)
        if path is None or block.get("is_error"):
            return
        relative = self._relative(path)
        if relative not in self.changed_files:
            self.changed_files.append(relative)
        await self._report(Progress("file_change", relative))

    def _relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self._workdir).as_posix()
        except ValueError:
            return path  # outside the workdir: kept absolute so it stays visible

    async def _report(self, progress: Progress) -> None:
        if self._on_progress is not None:
            await self._on_progress(progress)

    def result(self, exit_: ProcessExit) -> AgentResult:
        """The call's result, or the ``EngineError`` that explains why there is none."""
        final = self.final
        if final is None:
            if exit_.returncode == EXIT_COMMAND_NOT_FOUND:
                raise EngineNotInstalled(f"claude could not start: {exit_.stderr_tail}", engine=ENGINE_ID)
            detail = exit_.stderr_tail or "no error output"
            raise EngineError(
                f"claude exited with status {exit_.returncode} without a result: {detail}",
                retryable=classify(detail) is Failure.TRANSIENT,
                engine=ENGINE_ID,
                exit_code=exit_.returncode,
            )
        text = str(final.get("result") or "")
        usage = _usage(final.get("usage") or {})
        cost = final.get("total_cost_usd")
        cost_micro_usd = round(cost * 1_000_000) if isinstance(cost, int | float) else 0
        if final.get("is_error"):
            status = final.get("api_error_status")
            error = text or str(final.get("subtype") or "the turn failed")
            kind = classify(error, status if isinstance(status, int) else None)
            if kind is not Failure.TURN:
                raise EngineError(
                    f"claude: {error}",
                    retryable=kind is Failure.TRANSIENT,
                    engine=ENGINE_ID,
                    failure=kind.value,
                    api_error_status=status,
                    exit_code=exit_.returncode,
                )
            return AgentResult(
                ok=False,
                last_message=text,
                usage=usage,
                error=error,
                exit_code=exit_.returncode,
                changed_files=tuple(self.changed_files),
                reported_cost_micro_usd=cost_micro_usd,
            )
        structured = final.get("structured_output")
        return AgentResult(
            ok=True,
            last_message=json.dumps(structured) if structured is not None else text,
            usage=usage,
            exit_code=exit_.returncode,
            changed_files=tuple(self.changed_files),
            reported_cost_micro_usd=cost_micro_usd,
        )


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def _usage(raw: Mapping[str, Any]) -> TokenCounts:
    """Usage in the Codex sense: input counts every prompt token, cached ones included.

    The Messages API reports uncached input, cache reads and cache writes apart; they are added up so
    token budgets and prices mean the same for every engine.
    """

    def count(data: Mapping[str, Any], key: str) -> int:
        value = data.get(key)
        return value if isinstance(value, int) else 0

    details = raw.get("output_tokens_details")
    cached = count(raw, "cache_read_input_tokens")
    return TokenCounts(
        input_tokens=count(raw, "input_tokens") + cached + count(raw, "cache_creation_input_tokens"),
        cached_input_tokens=cached,
        output_tokens=count(raw, "output_tokens"),
        reasoning_output_tokens=count(details, "thinking_tokens") if isinstance(details, dict) else 0,
    )

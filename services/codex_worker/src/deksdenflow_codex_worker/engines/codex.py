"""The ``codex`` engine: the real OpenAI Codex CLI, ``codex exec --json``, one process per call.

Each call gets its own ``CODEX_HOME`` (the CLI writes state there on every run; sharing one between
concurrent calls would mix them), made under ``codex_home_root`` and removed afterwards. Keep that root
outside ``$TMPDIR``: the CLI refuses to create its helper aliases under a temporary directory.

The prompt goes on stdin, the last message comes from the ``-o`` file, and the ``--json`` event stream
gives progress, changed files and the real token usage. The CLI does not enforce ``--output-schema``:
the worker validates structured output.
"""

from __future__ import annotations

import json
import re
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

ENGINE_ID = "codex"
# The CLI's own variables (credentials, base URL, ``RUST_LOG``) that reach it from the worker's environment.
PASSTHROUGH = ("OPENAI_", "CODEX_", "RUST_LOG")
# The shell snapshot (a login shell sourcing ~/.bashrc to copy the user's shell setup) is for people at a
# terminal; it also runs in a session of its own, outside the process group a cancel stops.
HEADLESS_ARGS = ("--disable", "shell_snapshot")
LAST_MESSAGE = "last-message.txt"
OUTPUT_SCHEMA = "output-schema.json"


class CodexEngine:
    """Runs calls with ``codex exec``; ``extra_args`` come before the prompt (e.g. provider ``-c`` flags)."""

    def __init__(
        self,
        binary: str,
        *,
        codex_home_root: Path,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
    ) -> None:
        self.binary = binary
        self.codex_home_root = codex_home_root
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.kill_grace_seconds = kill_grace_seconds

    @property
    def engine_id(self) -> str:
        return ENGINE_ID

    def argv(self, call: AgentCall, *, last_message: Path, schema: Path | None) -> list[str]:
        """The ``codex exec`` command line of ``call`` (the prompt itself goes on stdin: ``-``)."""
        argv = [self.binary, "exec", "--json", "-o", str(last_message)]
        if schema is not None:
            argv += ["--output-schema", str(schema)]
        argv += ["-C", str(call.workdir.resolve()), "-s", call.sandbox.value, "-m", call.model]
        argv += ["--skip-git-repo-check", "--ephemeral", *HEADLESS_ARGS]
        return [*argv, *self.extra_args, "-"]

    async def run(self, call: AgentCall, on_progress: ProgressCallback | None = None) -> AgentResult:
        home = _make_home(self.codex_home_root, call)
        try:
            last_message = home / LAST_MESSAGE
            schema = home / OUTPUT_SCHEMA if call.output_schema is not None else None
            events = CodexEvents(call.workdir, on_progress)
            exit_ = await run_agent_process(
                self.argv(call, last_message=last_message, schema=schema),
                engine_id=ENGINE_ID,
                cwd=call.workdir,
                env=agent_environment(
                    {**self.env, "CODEX_HOME": str(home)}, passthrough_prefixes=PASSTHROUGH
                ),
                stdin=call.prompt.encode(),
                on_line=events.feed,
                timeout_seconds=call.timeout_seconds,
                kill_grace_seconds=self.kill_grace_seconds,
            )
            return events.result(exit_, _read_if_exists(last_message))
        finally:
            shutil.rmtree(home, ignore_errors=True)


def _make_home(root: Path, call: AgentCall) -> Path:
    """A fresh ``CODEX_HOME`` for ``call``, with the output schema file in it when the call has one.

    Resolved, because the CLI rejects paths it cannot normalise without following links.
    """
    root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{_slug(call.call_id)}-", dir=root)).resolve()
    if call.output_schema is not None:
        (home / OUTPUT_SCHEMA).write_text(json.dumps(call.output_schema))
    return home


def _read_if_exists(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:40] or "call"


class CodexEvents:
    """Folds the ``codex exec --json`` event stream into progress reports and, at the end, a result."""

    def __init__(self, workdir: Path, on_progress: ProgressCallback | None) -> None:
        self._workdir = workdir.resolve()
        self._on_progress = on_progress
        self.usage = TokenCounts()
        self.changed_files: list[str] = []
        self.messages: list[str] = []
        self.completed = False
        self.failure: str | None = None

    async def feed(self, line: str) -> None:
        """Take one stdout line; lines that are not JSON events are ignored."""
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "item.completed" and isinstance(event.get("item"), dict):
            await self._item(event["item"])
        elif kind == "turn.completed":
            self.completed = True
            self.usage = self.usage + _usage(event.get("usage") or {})
        elif kind == "turn.failed":
            self.failure = str((event.get("error") or {}).get("message") or "the turn failed")
        elif kind == "error":  # a non-fatal notice, e.g. "Reconnecting... 1/5"
            await self._report(Progress("notice", str(event.get("message", ""))))

    async def _item(self, item: Mapping[str, Any]) -> None:
        kind = item.get("type")
        if kind == "agent_message":
            self.messages.append(str(item.get("text", "")))
            await self._report(Progress("message", self.messages[-1]))
        elif kind == "reasoning":
            await self._report(Progress("reasoning", str(item.get("text", ""))))
        elif kind == "command_execution":
            data = {key: item.get(key) for key in ("exit_code", "status", "aggregated_output")}
            await self._report(Progress("command", str(item.get("command", "")), data))
        elif kind == "file_change":
            changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
            paths = [self._relative(str(c.get("path", ""))) for c in changes]
            if item.get("status", "completed") == "completed":
                self.changed_files = list(dict.fromkeys([*self.changed_files, *paths]))
            await self._report(Progress("file_change", ", ".join(paths), {"changes": changes}))
        elif kind == "error":  # a warning the CLI carried on after
            await self._report(Progress("warning", str(item.get("message", ""))))

    def _relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self._workdir).as_posix()
        except ValueError:
            return path  # outside the workdir (e.g. /tmp): kept absolute so it stays visible

    async def _report(self, progress: Progress) -> None:
        if self._on_progress is not None:
            await self._on_progress(progress)

    def result(self, exit_: ProcessExit, last_message: str | None) -> AgentResult:
        """The call's result, or the ``EngineError`` that explains why there is none."""
        if self.failure is not None:
            kind = classify(self.failure)
            if kind is not Failure.TURN:
                raise EngineError(
                    f"codex: {self.failure}",
                    retryable=kind is Failure.TRANSIENT,
                    engine=ENGINE_ID,
                    failure=kind.value,
                    exit_code=exit_.returncode,
                )
            return AgentResult(
                ok=False,
                last_message=last_message or "",
                usage=self.usage,
                error=self.failure,
                exit_code=exit_.returncode,
                changed_files=tuple(self.changed_files),
            )
        if exit_.returncode == EXIT_COMMAND_NOT_FOUND and not self.completed:
            raise EngineNotInstalled(f"codex could not start: {exit_.stderr_tail}", engine=ENGINE_ID)
        if exit_.returncode != 0 or not self.completed:
            detail = exit_.stderr_tail or "no error output"
            raise EngineError(
                f"codex exited with status {exit_.returncode} without completing the turn: {detail}",
                retryable=classify(detail) is Failure.TRANSIENT,
                engine=ENGINE_ID,
                exit_code=exit_.returncode,
            )
        if last_message is None:
            last_message = self.messages[-1] if self.messages else ""
        return AgentResult(
            ok=True,
            last_message=last_message,
            usage=self.usage,
            exit_code=0,
            changed_files=tuple(self.changed_files),
        )


def _usage(raw: Mapping[str, Any]) -> TokenCounts:
    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) else 0

    return TokenCounts(
        input_tokens=count("input_tokens"),
        cached_input_tokens=count("cached_input_tokens"),
        output_tokens=count("output_tokens"),
        reasoning_output_tokens=count("reasoning_output_tokens"),
    )

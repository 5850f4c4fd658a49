"""The contract every agent engine keeps.

An engine runs one agent call: a prompt in a working directory, with a sandbox mode, a model and
optionally a JSON schema for structured output. It reports the agent's last message, the real token
usage the engine itself reported, and progress as it goes. Cancelling the ``run`` coroutine stops the
agent process (its whole process group) within seconds; nothing is left behind.

Engines do not validate structured output (CLIs do not enforce schemas): the worker does, and treats
invalid output as a failed attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from deksdenflow_core.errors import DeksdenflowError, MissingDependency


class Sandbox(StrEnum):
    READ_ONLY = "read-only"
    WORKSPACE_WRITE = "workspace-write"


class CallPhase(StrEnum):
    PLANNING = "planning"
    DECOMPOSE = "decompose"
    EXEC = "exec"
    QA = "qa"
    DISCOVERY = "discovery"


@dataclass(frozen=True)
class AgentCall:
    """One call of an agent."""

    call_id: str
    phase: CallPhase
    prompt: str
    workdir: Path
    model: str
    sandbox: Sandbox
    # JSON schema the last message must match (forwarded to the engine; validated by the worker).
    output_schema: Mapping[str, Any] | None = None
    # Free-form labels engines may use (the scripted engine matches on them): protocol, step, attempt...
    labels: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 3600.0


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_output_tokens + other.reasoning_output_tokens,
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Progress:
    """Something the agent did (a command, a file change, a message, a retry notice)."""

    kind: str
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentResult:
    """What one call produced. ``ok`` is False when the engine reported a failed turn."""

    ok: bool
    last_message: str
    usage: TokenCounts
    error: str = ""
    exit_code: int = 0
    # Paths the agent reported changing (relative to the workdir), when the engine tells.
    changed_files: tuple[str, ...] = ()
    # Dollar cost the engine itself reported (Claude Code does), in micro-USD; 0 when unknown.
    reported_cost_micro_usd: int = 0


ProgressCallback = Callable[[Progress], Awaitable[None]]


class EngineError(DeksdenflowError):
    """The engine could not run the call (binary missing, crashed, timed out, unreachable model).

    Whether a retry may help depends on the cause, not only on the class: an unreachable model is worth
    another try, a bad flag is not. So ``retryable`` can be set per error (it defaults to the class's).
    """

    code = "engine_error"

    def __init__(self, message: str, *, retryable: bool | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retryable": self.retryable}


class EngineNotInstalled(EngineError, MissingDependency):
    """The engine's CLI cannot be started (not installed, not executable, its interpreter missing)."""

    code = "missing_dependency"


class EngineTimeout(EngineError):
    """The call ran longer than its ``timeout_seconds``; the agent was stopped. A new try may finish."""

    retryable = True
    code = "engine_timeout"


class UnknownEngine(EngineError):
    """No engine is registered under the id a call asked for."""

    code = "unknown_engine"


class Engine(Protocol):
    """An agent engine."""

    @property
    def engine_id(self) -> str: ...

    async def run(self, call: AgentCall, on_progress: ProgressCallback | None = None) -> AgentResult:
        """Run ``call`` to the end. Raises ``EngineError`` (``retryable`` set when a retry may help)."""
        ...

"""Which engine answers an ``engine_id``: ``codex``, ``claude-code`` or ``scripted``.

The registry is built once by the composition root from settings; engines are cheap objects (a
process starts per call), so every known engine is registered whether or not it is installed. A missing
CLI shows as ``EngineNotInstalled`` on the first call that needs it, with the binary it looked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from deksdenflow_codex_worker.engines.base import Engine, UnknownEngine
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_codex_worker.engines.scripted import ScriptedEngine


class EngineRegistry:
    """Engines by id."""

    def __init__(self, engines: Iterable[Engine]) -> None:
        self._engines: dict[str, Engine] = {}
        for engine in engines:
            if engine.engine_id in self._engines:
                raise ValueError(f"two engines registered as {engine.engine_id!r}")
            self._engines[engine.engine_id] = engine

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._engines))

    def __contains__(self, engine_id: object) -> bool:
        return engine_id in self._engines

    def get(self, engine_id: str) -> Engine:
        """The engine registered as ``engine_id``; ``UnknownEngine`` (not retryable) names the known ones."""
        try:
            return self._engines[engine_id]
        except KeyError:
            raise UnknownEngine(
                f"unknown engine {engine_id!r}; known: {', '.join(self.ids)}",
                engine=engine_id,
                known=self.ids,
            ) from None


class EngineSettings(Protocol):
    """What ``build_registry`` reads from the worker's settings."""

    @property
    def codex_bin(self) -> str: ...

    @property
    def claude_bin(self) -> str: ...

    @property
    def scripted_script(self) -> Path | None: ...

    def codex_extra_args(self) -> list[str]: ...

    def claude_extra_args(self) -> list[str]: ...


def build_registry(
    settings: EngineSettings,
    *,
    codex_home_root: Path,
    claude_config_root: Path | None = None,
    codex_env: Mapping[str, str] | None = None,
    claude_env: Mapping[str, str] | None = None,
) -> EngineRegistry:
    """Every engine, configured from ``settings``.

    ``codex_home_root`` holds the per-call ``CODEX_HOME`` directories; ``claude_config_root`` the per-call
    Claude Code config directories (default: ``claude-home`` next to ``codex_home_root``). ``codex_env``
    and ``claude_env`` add to the few variables the agent processes inherit (credentials, base URLs).
    """
    return EngineRegistry(
        [
            CodexEngine(
                settings.codex_bin,
                codex_home_root=codex_home_root,
                extra_args=settings.codex_extra_args(),
                env=codex_env,
            ),
            ClaudeCodeEngine(
                settings.claude_bin,
                config_root=claude_config_root or codex_home_root.parent / "claude-home",
                extra_args=settings.claude_extra_args(),
                env=claude_env,
            ),
            ScriptedEngine(settings.scripted_script),
        ]
    )

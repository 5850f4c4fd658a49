"""The engine registry: every engine by id, built from the worker's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deksdenflow_codex_worker.engines.base import EngineError
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_codex_worker.engines.registry import EngineRegistry, build_registry
from deksdenflow_codex_worker.engines.scripted import ScriptedEngine


@dataclass
class Settings:
    codex_bin: str = "/opt/agents/codex"
    claude_bin: str = "/opt/agents/claude"
    scripted_script: Path | None = None
    codex_args: list[str] = field(default_factory=lambda: ["-c", "model_provider=fake"])
    claude_args: list[str] = field(default_factory=lambda: ["--allowedTools", "Bash"])

    def codex_extra_args(self) -> list[str]:
        return self.codex_args

    def claude_extra_args(self) -> list[str]:
        return self.claude_args


def test_build_registry_configures_every_engine_from_settings(tmp_path: Path) -> None:
    script = tmp_path / "script.json"

    registry = build_registry(
        Settings(scripted_script=script),
        codex_home_root=tmp_path / "codex-home",
        codex_env={"OPENAI_API_KEY": "k"},
    )

    assert registry.ids == ("claude-code", "codex", "scripted")
    codex = registry.get("codex")
    claude = registry.get("claude-code")
    scripted = registry.get("scripted")
    assert isinstance(codex, CodexEngine)
    assert isinstance(claude, ClaudeCodeEngine)
    assert isinstance(scripted, ScriptedEngine)
    assert (codex.binary, codex.extra_args, codex.env) == (
        "/opt/agents/codex",
        ("-c", "model_provider=fake"),
        {"OPENAI_API_KEY": "k"},
    )
    assert codex.codex_home_root == tmp_path / "codex-home"
    assert (claude.binary, claude.extra_args) == ("/opt/agents/claude", ("--allowedTools", "Bash"))
    assert claude.config_root == tmp_path / "claude-home"
    assert scripted.script_path == script


def test_registry_names_the_known_ids_for_an_unknown_one() -> None:
    scripted = ScriptedEngine()
    registry = EngineRegistry([scripted])

    assert registry.get("scripted") is scripted
    assert "scripted" in registry
    with pytest.raises(EngineError, match="unknown engine 'gpt'; known: scripted") as caught:
        registry.get("gpt")
    assert caught.value.code == "unknown_engine"
    assert not caught.value.retryable
    with pytest.raises(ValueError, match="two engines"):
        EngineRegistry([scripted, ScriptedEngine()])

"""The model side of an evaluation: one local Responses API server (the Codex CLI's) and one local
Messages API server (the Claude Code CLI's) for the whole system, answering each project's requests with
that project's handler — a cassette player (replay), the authored model behind a recorder (author), or a
recording proxy in front of the real API (live).

Requests are told apart by the worktree the CLI announces (Codex's ``<cwd>``, Claude Code's "Primary
working directory"): the codex worker makes every job's worktree under ``worktrees/<project id>/``, and
every (task, variant) of an evaluation is a project of its own. A request from no known project gets HTTP
400, loudly.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deksdenflow_fakes import anthropic_api
from deksdenflow_fakes.anthropic_api import FakeAnthropicApi
from deksdenflow_fakes.cassettes import (
    Cassette,
    Dialect,
    Handler,
    Interaction,
    Normaliser,
    Player,
    Recorder,
)
from deksdenflow_fakes.messages_cassettes import MessagesNormaliser
from deksdenflow_fakes.responses_api import FakeResponsesApi, Turn, codex_offline_args

# The CLI sends the key the provider names; the codex engine passes CODEX_* variables through.
KEY_ENV = "CODEX_EVAL_API_KEY"
_PROJECT = re.compile(r"<cwd>[^<]*/worktrees/([^/<]+)/")
_CLAUDE_PROJECT = re.compile(r"Primary working directory: \S*/worktrees/([^/\s]+)/")
AnyHandler = Handler | anthropic_api.Handler  # a Responses API's or a Messages API's


class ClaudeNormaliser(MessagesNormaliser):
    """The Messages API's normaliser, with the memory directory Claude Code names in its system prompt
    made a placeholder: it is named after the repository's main git directory — here the codex worker's
    mirror of the project, a new id for every run — not after the worktree."""

    _MEMORY = re.compile(r"(<CLAUDE_CONFIG>/projects/)[^/\s`'\"]+")

    def text(self, text: str, roots: Mapping[str, str]) -> str:
        return self._MEMORY.sub(r"\1<REPOSITORY_SLUG>", super().text(text, roots))


def normaliser(engine: str, system_home: Path) -> Dialect[Any]:
    """How the ``engine``'s requests are normalised: each call's own config directory (made by the codex
    worker under the system's home) becomes a placeholder."""
    home = system_home.resolve()
    if engine == "claude-code":
        return ClaudeNormaliser(homes={str(home / "claude-home"): "<CLAUDE_CONFIG>"})
    return Normaliser(homes={str(home / "codex-home"): "<CODEX_HOME>"})


class ModelServer:
    """A ``FakeResponsesApi`` and a ``FakeAnthropicApi`` that route by project."""

    def __init__(self) -> None:
        self.server = FakeResponsesApi(api_key="eval-local-key", handler=self._route)
        self.claude = FakeAnthropicApi(api_key="eval-local-key", handler=self._route_claude)
        self._handlers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.unrouted: list[str] = []

    def __enter__(self) -> ModelServer:
        self.server.start()
        self.claude.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.claude.stop()
        self.server.stop()

    def attach(self, project_id: str, handler: AnyHandler) -> None:
        with self._lock:
            self._handlers[project_id] = handler

    def _owner(self, found: re.Match[str] | None) -> tuple[Any, str]:
        with self._lock:
            handler = self._handlers.get(found.group(1)) if found else None
        why = f"no evaluation run owns this request (project {found.group(1) if found else 'unknown'})"
        if handler is None:
            self.unrouted.append(why)
        return handler, why

    def _route(self, body: Mapping[str, Any]) -> Turn:
        handler, why = self._owner(_PROJECT.search(json.dumps(body.get("input", []))))
        return Turn.http_error(400, why) if handler is None else handler(body)

    def _route_claude(self, body: Mapping[str, Any]) -> anthropic_api.Turn:
        messages = body.get("messages") or [{}]
        handler, why = self._owner(_CLAUDE_PROJECT.search(json.dumps(messages[0])))
        return anthropic_api.Turn.http_error(400, why) if handler is None else handler(body)

    def codex_args(self) -> str:
        """``DEKSDENFLOW_CODEX_ARGS``: the CLI's provider pointed here, offline and quick to fail."""
        args = codex_offline_args(
            self.server.base_url, name="eval", env_key=KEY_ENV, stream_idle_timeout_ms=60000
        )
        return shlex.join(args)

    def codex_env(self) -> dict[str, str]:
        return {KEY_ENV: self.server.api_key}

    def claude_env(self) -> dict[str, str]:
        """The Claude Code CLI pointed here (the claude-code engine passes ``ANTHROPIC_*`` and
        ``CLAUDE_CODE_*`` through), offline and quick to fail."""
        return {
            "ANTHROPIC_BASE_URL": self.claude.url,
            "ANTHROPIC_API_KEY": self.claude.api_key,
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }


# --- cassettes on disk: one file per agent session (one `codex exec`), in the order they began ----------


def load_player(folder: Path, norm: Dialect[Any]) -> Player[Any]:
    """A player holding every session of one (variant, task), matched in any order (runs of a protocol's
    phases are sequential, but a cassette per session keeps each reviewable on its own)."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no cassettes (author them: python -m evals author)")
    interactions: list[Interaction] = []
    for path in files:
        interactions += Cassette.load(path).interactions
    return Player(Cassette(interactions), norm)


def save_sessions(recorder: Recorder[Any], folder: Path, meta: Mapping[str, Any]) -> list[Path]:
    """The recorder's interactions split into sessions — a session starts with a request that carries no
    tool output and no assistant turn yet — written as ``NN-<phase>.json``; older files are removed."""
    sessions: list[list[Interaction]] = []
    for interaction in recorder.cassette.interactions:
        conversation = interaction.request["conversation"]
        if not any("output" in item or "call" in item for item in conversation) or not sessions:
            sessions.append([])
        sessions[-1].append(interaction)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    written = []
    for index, session in enumerate(sessions):
        phase = _phase(session[0])
        path = folder / f"{index:02d}-{phase}.json"
        Cassette(session, {**meta, "session": index, "phase": phase}).save(path)
        written.append(path)
    return written


def _phase(first: Interaction) -> str:
    """What the session was, from its first answer (a plan, a verdict) and prompt (a re-ask)."""
    text = " ".join(str(item.get("text", "")) for item in first.request["conversation"])
    answer = json.dumps(first.reply.get("items", first.reply.get("blocks", [])))
    kind = "exec"
    if first.request.get("output_schema") is not None:
        kind = "planning" if "plan_md" in answer else "qa"
    return kind + ("-reask" if "Your previous answer was rejected" in text or "guardrails" in text else "")

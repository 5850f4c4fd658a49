"""Fixtures of the engine tests: the real agent CLIs (pinned npm install) and the fake model servers.

The CLIs come from ``services/codex_worker/agents`` (``make agents`` installs them with ``npm ci``). They
run for real against a local fake that speaks the model API they use, so the tests exercise the CLI's own
tool loop, sandbox and process handling.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_fakes.anthropic_api import FakeAnthropicApi, claude_env
from deksdenflow_fakes.responses_api import FakeResponsesApi, codex_provider_args, codex_provider_env

from tests.engines.helpers import git

AGENTS_BIN = (
    Path(__file__).resolve().parents[2] / "services" / "codex_worker" / "agents" / "node_modules" / ".bin"
)


def _agent_binary(name: str) -> str:
    path = AGENTS_BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make agents` (npm ci of services/codex_worker/agents)")
    return str(path)


@pytest.fixture(scope="session")
def codex_bin() -> str:
    """The pinned Codex CLI."""
    return _agent_binary("codex")


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The pinned Claude Code CLI."""
    return _agent_binary("claude")


@pytest.fixture(scope="session")
def agent_homes() -> Iterator[Path]:
    """Root of the per-call CLI homes, outside the temp dir as the Codex CLI prefers (see codex.py)."""
    cache = Path.home() / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="deksdenflow-engine-tests-", dir=cache))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def responses_api() -> Iterator[FakeResponsesApi]:
    with FakeResponsesApi() as fake:
        yield fake


@pytest.fixture
def anthropic_api() -> Iterator[FakeAnthropicApi]:
    with FakeAnthropicApi() as fake:
        yield fake


@pytest.fixture
def codex_home_root(agent_homes: Path) -> Path:
    return agent_homes / f"codex-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def codex(codex_bin: str, codex_home_root: Path, responses_api: FakeResponsesApi) -> CodexEngine:
    """The codex engine pointed at this test's fake Responses API."""
    return CodexEngine(
        codex_bin,
        codex_home_root=codex_home_root,
        extra_args=codex_provider_args(responses_api),
        env=codex_provider_env(responses_api),
    )


@pytest.fixture
def claude_config_root(agent_homes: Path) -> Path:
    return agent_homes / f"claude-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def claude_home(tmp_path: Path) -> Path:
    """An empty HOME for the Claude Code CLI, so the tests neither depend on nor change the user's.

    The CLI's Bash tool runs the user's start-up files (a login shell, and a snapshot of ~/.bashrc). They can
    be slow or stuck (a stale ``pyenv rehash`` lock makes every login shell wait 60 s for it), and a test
    that stops the CLI mid-start-up can leave such state behind in the real home.
    """
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def claude_test_env(anthropic_api: FakeAnthropicApi, claude_home: Path) -> dict[str, str]:
    """The environment of a CLI pointed at this test's fake Messages API, in its own empty HOME."""
    return {**claude_env(anthropic_api), "HOME": str(claude_home)}


@pytest.fixture
def claude(claude_bin: str, claude_config_root: Path, claude_test_env: dict[str, str]) -> ClaudeCodeEngine:
    """The claude-code engine pointed at this test's fake Messages API."""
    return ClaudeCodeEngine(claude_bin, config_root=claude_config_root, env=claude_test_env)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A git repository with one commit, as a step's worktree would be."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@localhost")
    git(repo, "config", "user.name", "tests")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "init")
    return repo

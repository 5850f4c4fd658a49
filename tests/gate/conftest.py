"""Fixtures of the QA gate tests: a checkout with a protocol step, the fake Responses API, and the gate run
as a process of its own, through the ``deksdenflow`` console script, with the pinned Codex CLI pointed at the
fake (``make agents``)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_fakes.responses_api import (
    CODEX_API_KEY_ENV,
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    codex_provider_args,
)

from tests.engines.conftest import AGENTS_BIN
from tests.engines.helpers import git

DEKSDENFLOW = Path(sys.executable).parent / "deksdenflow"
GATE_MODULE = "deksdenflow_codex_worker.gate"
PROTOCOL = ".protocols/0001-add-greeting"
STEP = "01-greeting.md"
STEP_TEXT = "# 01 Greeting\n\nAdd `greet(name)` to greeting.py; it returns `Hello, <name>!`.\n"
# Variables of the machine running the tests that would change the gate's behaviour.
_UNSET = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "DEKSDENFLOW_QA_ENGINE", "DEKSDENFLOW_DEFAULT_ENGINE")


@dataclass(frozen=True)
class Ran:
    """A finished ``deksdenflow qa``."""

    code: int
    stdout: str
    stderr: str
    out: Path

    def json(self, name: str = "verdict.json") -> Any:
        return json.loads((self.out / name).read_text())


@dataclass(frozen=True)
class Gate:
    """Runs ``deksdenflow qa`` in ``checkout`` with the Codex CLI pointed at the test's fake model."""

    checkout: Path
    out: Path
    env: Mapping[str, str]
    codex: tuple[str, ...]  # the options that choose the codex engine, its binary, model and key

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, codex: bool = True, direct: bool = False
    ) -> Ran:
        """``deksdenflow qa ARGS``; ``direct``: the module it hands over to, without the hand-over (one
        interpreter start instead of two, for the runs that end at the usage check)."""
        command = [sys.executable, "-m", GATE_MODULE] if direct else [str(DEKSDENFLOW), "qa"]
        argv = [*command, *(self.codex if codex else ()), *args]
        done = subprocess.run(
            argv,
            cwd=self.checkout,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr, self.out)

    def step(self, *args: str, env: Mapping[str, str] | None = None) -> Ran:
        """QA of the checkout's protocol step, every report written under ``out``."""
        return self.run("--protocol-root", PROTOCOL, "--step", STEP, *self.reports(), *args, env=env)

    def reports(self) -> list[str]:
        return [
            *("--json", str(self.out / "verdict.json")),
            *("--markdown", str(self.out / "verdict.md")),
            *("--sarif", str(self.out / "qa.sarif")),
            *("--junit", str(self.out / "junit.xml")),
            *("--codequality", str(self.out / "codequality.json")),
        ]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository whose last commit is step 01 of a protocol: greeting.py added."""
    repo = tmp_path / "repo"
    root = repo / PROTOCOL
    root.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@localhost")
    git(repo, "config", "user.name", "tests")
    (repo / "README.md").write_text("# demo\n")
    (root / "plan.md").write_text("# Plan\n\nAdd a greeting module.\n")
    (root / "context.md").write_text("# Context\n\nA tiny Python repository.\n")
    (root / "log.md").write_text("# Log\n\n- planned\n")
    (root / STEP).write_text(STEP_TEXT)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "plan")
    (repo / "greeting.py").write_text("def greet(name):\n    return name\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat(01-greeting.md): add greet [protocol-0001/01]")
    return repo


@pytest.fixture
def model() -> Iterator[FakeResponsesApi]:
    with FakeResponsesApi() as fake:
        yield fake


@pytest.fixture(scope="session")
def cache_home() -> Iterator[Path]:
    """The gate's ``XDG_CACHE_HOME``, where it makes the agents' homes (outside ``$TMPDIR``, for codex)."""
    cache = Path.home() / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="deksdenflow-gate-tests-", dir=cache))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gate(checkout: Path, model: FakeResponsesApi, cache_home: Path, tmp_path: Path) -> Iterator[Gate]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env |= {
        "DEKSDENFLOW_CODEX_ARGS": shlex.join(codex_provider_args(model)),
        CODEX_API_KEY_ENV: model.api_key,
        "XDG_CACHE_HOME": str(cache_home),
        # No second try after a transient failure: each test scripts exactly what the model answers.
        "DEKSDENFLOW_CODEX_WORKER_TRIES": "1",
    }
    codex = ("--engine", "codex", "--codex-bin", str(AGENTS_BIN / "codex"), "--model", CODEX_TEST_MODEL)
    yield Gate(checkout, tmp_path / "out", env, (*codex, "--pass-env", CODEX_API_KEY_ENV))
    leftovers = list((cache_home / "deksdenflow").glob("*")) if (cache_home / "deksdenflow").exists() else []
    assert leftovers == [], "the gate removes the agents' homes it made"

"""Fixtures for the forge clients: the local fake GitHub and GitLab servers and clients pointed at them,
and fake gh/glab CLIs for the CLI fallback.

The fake CLI is a tiny Python script: it records its argv (and, with ``--input -``, what it read on stdin)
and answers from a list of rules (the first rule whose words all appear in the argv; a ``once`` rule is
used up; ``sleep`` makes it hang).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_fakes.gitlab import FakeGitLab
from deksdenflow_git.forges import GitHubForge, GitLabForge, parse_repo

GITHUB_TOKEN = "ghp_fakeSecretToken123"
GITLAB_TOKEN = "glpat-fakeSecretToken456"
GITHUB_REPO = "acme/widgets"
GITLAB_PROJECT = "platform/backend/api"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=GITHUB_TOKEN) as fake:
        yield fake


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(token=GITLAB_TOKEN) as fake:
        yield fake


@pytest.fixture
async def github_forge(github: FakeGitHub) -> AsyncIterator[GitHubForge]:
    repo = parse_repo(f"https://github.com/{GITHUB_REPO}.git", "github")
    forge = GitHubForge(repo, token=GITHUB_TOKEN, api_base_url=github.api_url)
    yield forge
    await forge.aclose()


@pytest.fixture
async def gitlab_forge(gitlab: FakeGitLab) -> AsyncIterator[GitLabForge]:
    repo = parse_repo(f"git@gitlab.example.com:{GITLAB_PROJECT}.git", "gitlab")
    forge = GitLabForge(repo, token=GITLAB_TOKEN, api_base_url=gitlab.base_url)
    yield forge
    await forge.aclose()


FAKE_CLI = """#!{python}
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_CLI_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *args]) + "\\n")
if "--input" in args:
    with open(os.environ["FAKE_CLI_INPUTS"], "a") as inputs:
        inputs.write(json.dumps(sys.stdin.read()) + "\\n")
rules_file = os.environ["FAKE_CLI_RULES"]
with open(rules_file) as f:
    rules = json.load(f)
for i, rule in enumerate(rules):
    if all(word in args for word in rule["when"]):
        if rule.get("once"):
            del rules[i]
            with open(rules_file, "w") as f:
                json.dump(rules, f)
        time.sleep(rule.get("sleep", 0))
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("rc", 0))
sys.stderr.write("fake cli: no rule for " + " ".join(args))
sys.exit(2)
"""


@dataclass
class FakeCli:
    """Controls the fake gh/glab: what they answer and what they were asked."""

    log: Path
    rules_file: Path
    inputs_file: Path

    def rules(self, *rules: dict[str, Any]) -> None:
        self.rules_file.write_text(json.dumps(list(rules)))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def inputs(self) -> list[Any]:
        """The JSON bodies the CLIs read on stdin, in order."""
        if not self.inputs_file.exists():
            return []
        return [json.loads(json.loads(line)) for line in self.inputs_file.read_text().splitlines()]


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gh", "glab"):
        script = bin_dir / name
        script.write_text(FAKE_CLI.format(python=sys.executable))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    cli = FakeCli(
        log=tmp_path / "calls.jsonl",
        rules_file=tmp_path / "rules.json",
        inputs_file=tmp_path / "inputs.jsonl",
    )
    cli.rules()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLI_LOG", str(cli.log))
    monkeypatch.setenv("FAKE_CLI_RULES", str(cli.rules_file))
    monkeypatch.setenv("FAKE_CLI_INPUTS", str(cli.inputs_file))
    return cli

"""Every guardrail with the real Codex CLI: a model stream authored here makes the CLI write a change that
breaks one rule in a real worktree of a protocol branch; the execution job's inspection (``guard_change``)
catches it with its evidence, the agent is asked again with the violation in its prompt, and once the
re-asks are spent the step's failure names the rule. The loop is the job's own (``guardrails.enforce``);
only recording the events is left to the end-to-end test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deksdenflow_codex_worker import guardrails
from deksdenflow_codex_worker.engines.base import AgentResult
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_codex_worker.jobs.execution import guard_change
from deksdenflow_codex_worker.prompts import load_prompt
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    add_file,
    apply_patch,
    delete_file,
    update_file,
    user_text,
)
from deksdenflow_git import Git, GitIdentity, MirrorCache, Worktree

from tests.engines.helpers import git, make_call
from tests.git.origin import ISOLATED_GIT_ENV

ROOT = ".protocols/0001-add-greeting"
STEP = "01-greeting.md"
STEP_TEXT = "# Greeting\n\nScope: greeting.py, tests/**\n\nAdd greet() to greeting.py, with a test.\n"
GH_TOKEN = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"  # a made-up token of GitHub's shape
SKIPPED = "import pytest\n\n\n@pytest.mark.skip\ndef test_old():\n    assert True\n"


@dataclass(frozen=True)
class Case:
    """One rule broken: what the model has the CLI do, and what the guardrails must say about it."""

    rule: str
    patch: str  # "" : the agent changes nothing
    evidence: tuple[str, ...]
    again: bool = False  # the re-asked agent breaks the rule anew (its first change was undone)


CASES = {
    "outside_scope": Case("scope", apply_patch(add_file("setup.py", "print('setup')\n")), ("setup.py",)),
    "ci_configuration": Case(
        "protected_path",
        apply_patch(
            add_file("greeting.py", "def greet(n):\n    return n\n"), add_file(".gitlab-ci.yml", "x:\n")
        ),
        (".gitlab-ci.yml",),
    ),
    "lock_file": Case(
        "protected_path", apply_patch(update_file("uv.lock", "version = 1", "version = 2")), ("uv.lock",)
    ),
    "protocol_file": Case(
        "protected_path",
        apply_patch(update_file(f"{ROOT}/{STEP}", "Scope: greeting.py, tests/**", "Scope: **")),
        (f"{ROOT}/{STEP}",),
        again=True,
    ),
    "diff_size": Case(
        "diff_size",
        apply_patch(add_file("greeting.py", "\n".join(f"X{i} = {i}" for i in range(30)))),
        ("greeting.py: +30 -0",),
    ),
    "secret": Case(
        "secret",
        apply_patch(add_file("greeting.py", f'TOKEN = "{GH_TOKEN}"\n')),
        ("greeting.py:1 (GitHub Token)",),
    ),
    "test_deleted": Case(
        "tests_weakened", apply_patch(delete_file("tests/test_old.py")), ("tests/test_old.py",)
    ),
    "test_skipped": Case(
        "tests_weakened",
        apply_patch(
            update_file("tests/test_old.py", "def test_old():", "@pytest.mark.skip\ndef test_old():")
        ),
        ("tests/test_old.py:1: @pytest.mark.skip",),
    ),
    "empty_change": Case("empty_change", "", ()),
}


@pytest.fixture
async def worktree(tmp_path: Path) -> AsyncIterator[Worktree]:
    """A worktree of protocol branch 0001-add-greeting, its protocol files and a lock file on it."""
    origin = tmp_path / "origin"
    files = {
        f"{ROOT}/plan.md": "# Plan\n\nAdd a greeting.\n",
        f"{ROOT}/{STEP}": STEP_TEXT,
        "tests/test_old.py": "def test_old():\n    assert True\n",
        "uv.lock": "version = 1\n",
        "README.md": "# demo\n",
    }
    for path, text in files.items():
        (origin / path).parent.mkdir(parents=True, exist_ok=True)
        (origin / path).write_text(text)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    g = Git(identity=GitIdentity("t", "t@example.com"), env=ISOLATED_GIT_ENV)
    async with MirrorCache(tmp_path / "mirrors", g).worktree(
        "p1", str(origin), branch="0001-add-greeting", base_branch="main", job_id="exec-01-0"
    ) as wt:
        yield wt


@pytest.mark.parametrize("name", list(CASES))
async def test_each_rule_broken_by_the_real_cli_is_caught_re_asked_then_fails_the_step(
    name: str, codex: CodexEngine, responses_api: FakeResponsesApi, worktree: Worktree
) -> None:
    case, wt, fake = CASES[name], worktree, responses_api
    done = Turn.message("Add greet()\n\nDone as the step asks.")
    first = [Turn.patch(case.patch), done] if case.patch else [done]
    fake.push(
        *first, *(first if case.again else [Turn.message("I kept my change: it is what the step needs.")])
    )
    settings = WorkerSettings(guardrail_max_lines=20, guardrail_reasks=1)
    prompt = load_prompt("exec").render(
        protocol_name="0001-add-greeting", protocol_root=ROOT, step_name=STEP, step_content=STEP_TEXT
    )
    on_disk: list[list[str]] = []
    restored: list[str] = []
    reports: list[tuple[list[guardrails.Finding], int, bool]] = []

    async def ask(text: str, reask: int) -> AgentResult:
        return await codex.run(make_call(wt.path, text, model=CODEX_TEST_MODEL), _ignore)

    async def inspect() -> list[guardrails.Finding]:
        on_disk.append(await wt.changed_files())
        findings, undone = await guard_change(
            wt, settings, step_text=STEP_TEXT, protocol_root=ROOT, work_step=True
        )
        restored.extend(undone)
        return findings

    async def report(findings: list[guardrails.Finding], reask: int, again: bool) -> None:
        reports.append((findings, reask, again))

    enforced = await guardrails.enforce(prompt, settings.guardrail_reasks, ask, inspect, report)

    # The CLI really made the change (or none), and it was inspected after each answer.
    assert len(on_disk) == 2
    if case.patch:
        assert on_disk[0], "the CLI changed the worktree"
    # Each answer broke the rule: recorded with its evidence, asked again once, then no more.
    assert [(r, again) for _, r, again in reports] == [(0, True), (1, False)]
    for findings, _, _ in reports:
        found = [f for f in findings if f.rule == case.rule]
        assert found, findings
        if case.evidence:
            assert found[0].evidence == case.evidence
    # The re-ask carried the violation to the model; the first prompt did not.
    prompts = [user_text(c) for c in fake.calls if not _tool_round(c)]
    assert len(prompts) == 2
    assert "broke deksdenflow's guardrails" not in prompts[0]
    assert "broke deksdenflow's guardrails (asking again: 1 of 1)" in prompts[1]
    assert f"- {case.rule}: " in prompts[1]
    assert GH_TOKEN not in prompts[1]  # a secret's place and kind, never its value
    # After the bound: the step fails, and its reason names the rule.
    assert enforced.failure.startswith("guardrails: "), enforced.failure
    assert f"{case.rule}: " in enforced.failure
    if case.rule == "protected_path" and case.patch and ROOT in case.patch:
        assert restored == [f"{ROOT}/{STEP}", f"{ROOT}/{STEP}"]
        assert (wt.path / ROOT / STEP).read_text() == STEP_TEXT  # the contract is as planned


def _tool_round(call: dict[str, object]) -> bool:
    """A request that only sends a tool's output back (the same prompt, a later round of one answer)."""
    inputs = call.get("input")
    return isinstance(inputs, list) and any(
        isinstance(i, dict) and str(i.get("type", "")).endswith("_output") for i in inputs
    )


async def _ignore(progress: object) -> None:
    return None

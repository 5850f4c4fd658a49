"""Guardrails on an execution's change: each rule on a change read from a real git worktree, and what
the rules leave alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from deksdenflow_codex_worker import guardrails
from deksdenflow_codex_worker.guardrails import Change, Limits, check, declared_scope, read_change
from deksdenflow_codex_worker.jobs.qa import combine
from deksdenflow_codex_worker.planning import InvalidOutput
from deksdenflow_codex_worker.qa_verdict import parse_verdict
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaVerdict
from deksdenflow_git import Git, GitIdentity, MirrorCache, Worktree

from tests.engines.helpers import git
from tests.git.origin import ISOLATED_GIT_ENV

GH_TOKEN = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"  # a made-up token of GitHub's shape


def rules(found: list[guardrails.Finding]) -> list[str]:
    return [f.rule for f in found]


def change(files: tuple[str, ...] = (), lines_added: int = 0, lines_removed: int = 0) -> Change:
    return Change(files=files, lines_added=lines_added, lines_removed=lines_removed)


def test_a_declared_scope_bounds_the_change() -> None:
    step = "# 01 Greeting\n\nScope: `sample/**`, tests/test_greeting.py\n\nAdd greet().\n"
    assert declared_scope(step) == ["sample/**", "tests/test_greeting.py"]
    inside = change(files=("sample/greeting.py", "sample/sub/x.py", "tests/test_greeting.py"))
    assert check(inside, step, work_step=True, root=Path("/nonexistent"), limits=Limits()) == []
    outside = change(files=("sample/greeting.py", "setup.py"))
    (found,) = check(outside, step, work_step=True, root=Path("/nonexistent"), limits=Limits())
    assert (found.rule, found.evidence) == ("scope", ("setup.py",))
    assert declared_scope("# no scope here\n") == []
    assert declared_scope("- **Scope:** `src/**`\n") == declared_scope("**Scope**: src/**") == ["src/**"]
    assert declared_scope("Scope: **\n") == ["**"]


def test_ci_configuration_and_lock_files_need_the_step_to_name_them() -> None:
    touched = change(files=(".github/workflows/ci.yml", "uv.lock", "src/app.py"))
    (found,) = check(touched, "Add a feature.", work_step=True, root=Path("/x"), limits=Limits())
    assert (found.rule, found.evidence) == ("protected_path", (".github/workflows/ci.yml", "uv.lock"))
    allowed = check(touched, "Bump httpx in uv.lock; fix .github/workflows/ci.yml", work_step=True,
                    root=Path("/x"), limits=Limits())  # fmt: skip
    assert allowed == []
    mine = check(change(files=("deploy/prod.yaml",)), "x", work_step=True, root=Path("/x"),
                 limits=Limits(protected=("deploy/*",)))  # fmt: skip
    assert rules(mine) == ["protected_path"]


def test_a_change_too_large_and_an_empty_work_step_are_findings() -> None:
    big = change(files=("a.py",), lines_added=4000, lines_removed=2000)
    assert rules(check(big, "", work_step=True, root=Path("/x"), limits=Limits(max_lines=5000))) == [
        "diff_size"
    ]
    assert rules(check(change(), "", work_step=True, root=Path("/x"), limits=Limits())) == ["empty_change"]
    assert check(change(), "", work_step=False, root=Path("/x"), limits=Limits()) == []  # a setup step


@pytest.fixture
async def worktree(tmp_path: Path) -> AsyncIterator[Worktree]:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    (origin / "tests").mkdir()
    (origin / "tests" / "test_old.py").write_text("def test_old():\n    assert True\n")
    (origin / "app.py").write_text("x = 1\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "init")
    g = Git(identity=GitIdentity("t", "t@example.com"), env=ISOLATED_GIT_ENV)
    mirrors = MirrorCache(tmp_path / "mirrors", g)
    async with mirrors.worktree(
        "p1", str(origin), branch="0001-x", base_branch="main", job_id="exec-01-0"
    ) as wt:
        yield wt


async def test_secrets_and_weakened_tests_are_found_in_a_real_change(worktree: Worktree) -> None:
    wt = worktree
    (wt.path / "tests" / "test_old.py").unlink()
    (wt.path / "tests" / "test_new.py").write_text(
        "import pytest\n\n@pytest.mark.skip(reason='later')\ndef test_new():\n    assert False\n"
    )
    (wt.path / "config.py").write_text(f'x = 1\nTOKEN = "{GH_TOKEN}"\n')
    (wt.path / "app.py").write_text("x = 2\n")
    read = await read_change(wt)
    assert set(read.files) == {"tests/test_old.py", "tests/test_new.py", "config.py", "app.py"}
    assert read.deleted == ("tests/test_old.py",)
    found = {f.rule: f for f in check(read, "", work_step=True, root=wt.path, limits=Limits())}
    assert set(found) == {"secret", "tests_weakened"}
    assert found["secret"].evidence == ("config.py:2 (GitHub Token)",)
    assert GH_TOKEN not in str(found["secret"])  # where and what kind, never the value
    weakened = [
        f
        for f in check(read, "", work_step=True, root=wt.path, limits=Limits())
        if f.rule == "tests_weakened"
    ]
    assert [w.evidence for w in weakened] == [
        ("tests/test_old.py",),
        ("tests/test_new.py:3: @pytest.mark.skip(reason='later')",),
    ]


async def test_an_honest_change_has_no_finding(worktree: Worktree) -> None:
    wt = worktree
    (wt.path / "app.py").write_text("x = 2\n")
    (wt.path / "tests" / "test_app.py").write_text("def test_x():\n    assert 2 == 2\n")
    read = await read_change(wt)
    assert (read.lines_added, read.lines_removed) == (3, 1)
    assert check(read, "", work_step=True, root=wt.path, limits=Limits()) == []


def verdict(kind: str, blocking: list[str]) -> str:
    return json.dumps(
        {
            "summary": "s",
            "findings": {"blocking": blocking, "warnings": [], "notes": []},
            "next_actions": [],
            "verdict": kind,
        }
    )


def test_a_qa_fail_must_cite_its_evidence_and_a_pass_with_blocking_findings_is_a_fail() -> None:
    with pytest.raises(InvalidOutput, match="must name its blocking findings"):
        parse_verdict(verdict("FAIL", []))
    with pytest.raises(InvalidOutput, match="must name its blocking findings"):
        parse_verdict(verdict("FAIL", ["  "]))
    assert parse_verdict(verdict("FAIL", ["app.py:3 is wrong"])).passed is False
    assert parse_verdict(verdict("PASS", ["app.py:3 is wrong"])).passed is False
    assert parse_verdict(verdict("PASS", [])).passed is True


def test_a_critical_steps_two_verdicts_pass_only_when_both_pass() -> None:
    def recorded(kind: QaVerdict, *blocking: str) -> cmd.RecordQaVerdict:
        return cmd.RecordQaVerdict(
            step_run_id="s", qa_attempt=1, verdict=kind, summary=kind.name.lower(), blocking=blocking
        )

    passed = combine(("codex:a", recorded(QaVerdict.PASS)), ("claude-code:b", recorded(QaVerdict.PASS)))
    assert (passed.verdict, passed.blocking) == (QaVerdict.PASS, ())
    assert passed.summary.startswith("Critical step, two reviewers (both must pass). codex:a: PASS: pass")
    failed = combine(
        ("codex:a", recorded(QaVerdict.PASS)), ("claude-code:b", recorded(QaVerdict.FAIL, "x.py:1"))
    )
    assert (failed.verdict, failed.blocking) == (QaVerdict.FAIL, ("[claude-code:b] x.py:1",))
    assert (failed.step_run_id, failed.qa_attempt) == ("s", 1)


@pytest.mark.parametrize(
    "line",
    [
        "@pytest.mark.skipif(sys.platform == 'linux', reason='later')",
        "    pytest.skip('flaky')",
        "it.only('greets', () => {",
        "fit('greets', () => {",
        "xdescribe('greeting', () => {",
        '\tt.Skip("later")',
    ],
)
def test_skipped_and_focused_tests_weaken_the_suite(line: str) -> None:
    added = Change(files=("tests/test_x.py",), added={"tests/test_x.py": [(7, line)]}, lines_added=1)
    (found,) = check(added, "", work_step=True, root=Path("/nonexistent"), limits=Limits())
    assert (found.rule, found.evidence) == ("tests_weakened", (f"tests/test_x.py:7: {line.strip()}",))


def test_a_call_named_like_a_focus_is_not_one() -> None:
    fitted = Change(files=("model.py",), added={"model.py": [(3, "model.fit(x, y)"), (4, "profit(1)")]})
    assert check(fitted, "", work_step=True, root=Path("/nonexistent"), limits=Limits()) == []

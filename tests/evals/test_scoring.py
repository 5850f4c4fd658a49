"""The evaluation tasks are well formed and scored by their hidden tests: the fixture as it is fails its
FAIL_TO_PASS tests, the reference solution resolves it, and a change that breaks a PASS_TO_PASS test does
not count as resolved — for every shipped task, with real git and pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.scoring import score
from evals.tasks import Task, all_tasks, apply_solution, git, materialize

TASKS = all_tasks()


def test_the_suite_ships_tasks_and_each_fixture_commit_is_the_same_everywhere(tmp_path: Path) -> None:
    assert len(TASKS) >= 3
    task = TASKS[0]
    assert materialize(task, tmp_path / "a") == materialize(task, tmp_path / "b")
    origin = tmp_path / "origin.git"
    sha = materialize(task, origin, bare=True)
    assert git(origin, "rev-parse", "main") == sha


@pytest.mark.parametrize("task", TASKS, ids=[t.id for t in TASKS])
def test_the_fixture_fails_its_task_and_the_reference_solution_resolves_it(
    task: Task, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    materialize(task, checkout)
    before = score(task, checkout)
    assert not any(before.fail_to_pass.values()), before.summary
    assert before.pass_to_pass, task.id
    assert all(before.pass_to_pass.values()), before.summary

    apply_solution(task, checkout)
    after = score(task, checkout)
    assert after.resolved, after.summary
    assert not (checkout / "tests" / next(task.hidden.iterdir()).name).exists()  # scored in a copy


def test_a_change_that_breaks_a_test_that_passed_is_not_resolved(tmp_path: Path) -> None:
    task = next(t for t in TASKS if t.id == "fix-off-by-one")
    checkout = tmp_path / "checkout"
    materialize(task, checkout)
    # fixes the partial page but breaks full pages
    broken = (
        "def pages(items, size):\n    return [items[i : i + size - 1] for i in range(0, len(items), size)]\n"
    )
    (checkout / "pager" / "pages.py").write_text(broken)
    result = score(task, checkout)
    assert not result.resolved
    assert result.pass_to_pass["tests/test_pages.py::test_full_pages"] is False

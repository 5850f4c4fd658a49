"""Evaluation tasks: ``evals/tasks/<id>/`` holds ``task.toml`` (the task as a protocol's task text, the
FAIL_TO_PASS and PASS_TO_PASS test ids, the QA verdict a run should reach), ``repo/`` (the repository the
agent works on), ``hidden/`` (tests the agent never sees, added to the checkout when it is scored) and
``solution/`` (a reference change: files that replace or join the repository's).

The fixture repository is kept as plain files rather than a git bundle, so a change to a task is a
reviewable diff; ``materialize`` makes it a git repository whose one commit is the same, to the SHA, on
every machine (fixed author, committer and dates).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TASKS = Path(__file__).resolve().parent / "tasks"
# The fixture's one commit: fixed, so its SHA is the same everywhere (and cassettes may name it).
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "deksdenflow evals",
    "GIT_AUTHOR_EMAIL": "evals@localhost",
    "GIT_COMMITTER_NAME": "deksdenflow evals",
    "GIT_COMMITTER_EMAIL": "evals@localhost",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    task: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    qa_label: str
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def hidden(self) -> Path:
        return self.root / "hidden"

    @property
    def solution(self) -> Path:
        return self.root / "solution"


def load(task_id: str, tasks: Path = TASKS) -> Task:
    root = tasks / task_id
    spec = tomllib.loads((root / "task.toml").read_text())
    label = str(spec.get("qa_label", "PASS"))
    if label not in ("PASS", "FAIL"):
        raise ValueError(f"{root}/task.toml: qa_label must be PASS or FAIL, not {label!r}")
    if not spec.get("fail_to_pass"):
        raise ValueError(f"{root}/task.toml: fail_to_pass names no test")
    return Task(
        id=task_id,
        title=str(spec["title"]),
        task=str(spec["task"]),
        fail_to_pass=tuple(spec["fail_to_pass"]),
        pass_to_pass=tuple(spec.get("pass_to_pass", ())),
        qa_label=label,
        root=root,
    )


def all_tasks(tasks: Path = TASKS) -> list[Task]:
    return [load(p.name, tasks) for p in sorted(tasks.iterdir()) if (p / "task.toml").is_file()]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **_GIT_ENV}, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def materialize(task: Task, dest: Path, *, bare: bool = False, extra: Mapping[str, str] | None = None) -> str:
    """``dest``: a git repository of the task's fixture on ``main`` (bare: as an origin); its commit SHA,
    identical on every machine. ``extra``: more files (path -> text) in the same commit, such as a
    variant's prompt overrides."""
    work = dest if not bare else dest.with_name(dest.name + ".work")
    shutil.copytree(task.repo, work)
    for path, text in (extra or {}).items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"{task.title} (evaluation fixture)")
    sha = git(work, "rev-parse", "HEAD")
    if bare:
        git(work.parent, "clone", "-q", "--bare", str(work), str(dest))
        shutil.rmtree(work)
    return sha


def apply_solution(task: Task, checkout: Path) -> None:
    """Put the reference change in ``checkout`` (what a perfect run would have done)."""
    shutil.copytree(task.solution, checkout, dirs_exist_ok=True)

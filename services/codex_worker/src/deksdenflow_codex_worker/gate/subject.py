"""What the gate judges, read from a local checkout: a protocol step, or a change and the task it is for.

The change is measured from the merge base of ``base`` and the head: to the working tree (uncommitted and
untracked files included, so a change can be checked before it is committed) or, with ``head``, to that
commit. In a protocol the default base is the head's parent: the step's own commit, as the worker reviews it.
Protocol files and the task file are read from the checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deksdenflow_core.errors import ConfigurationError
from deksdenflow_git import Git, GitCommandError, changed_paths, working_tree_diff

from deksdenflow_codex_worker.prompts import protocol_file
from deksdenflow_codex_worker.qa_verdict import FULL_DIFF_LIMIT, QaSubject

# The per-step settings the planner writes next to the step files (``jobs/planning.py``).
SPEC_FILE = "spec.json"
NO_PROTOCOL = "(none: a change checked against its task)"
NO_PLAN = "(no protocol: the change is checked against its task alone)"


@dataclass(frozen=True)
class Change:
    """A range of the checkout's history, with the working tree when no head was named."""

    base: str  # as given
    base_sha: str  # the merge base the change is measured from
    head: str  # as given, or "" for the working tree
    commits: str  # one "<sha> <subject>" line per commit
    diff: str
    changed_files: tuple[str, ...]
    git_status: str
    last_commit: str

    @property
    def text(self) -> str:
        """The change as QA shows it: the commits, then the diff (empty when nothing changed)."""
        return f"{self.commits}\n{self.diff}" if self.diff else ""


@dataclass(frozen=True)
class Subject:
    """What the gate judges, with where it came from."""

    qa: QaSubject
    checkout: Path
    change: Change
    # "step" (a protocol step) or "task" (a change and its task).
    kind: str
    # What is judged, for people: "step 01-x.md of 0001-y", "task in task.md".
    title: str
    # The step file or the task file (repository path): findings that name no file point at it.
    anchor: str = ""
    # The step's QA policy from the protocol's spec.json ("light", "full", "skip"), when it says.
    planned_policy: str = ""


async def find_checkout(git: Git, where: Path) -> Path:
    """The root of the git checkout around ``where`` (absolute, links resolved, as git reports it)."""
    result = await git.execute("rev-parse", "--show-toplevel", cwd=_directory(where))
    if not result.ok:
        raise ConfigurationError(f"{where} is not inside a git checkout")
    return Path(result.stdout.strip())


async def protocol_step(
    git: Git, checkout: Path, protocol_root: Path, step: str, *, base: str, head: str
) -> Subject:
    """A step of a protocol folder (``.protocols/NNNN-slug``), judged against its step file."""
    root = _inside(checkout, protocol_root, "--protocol-root")
    if Path(step).name != step:
        raise ConfigurationError(f"--step names a file of the protocol folder, not a path: {step!r}")
    if not (checkout / root / step).is_file():
        raise ConfigurationError(f"the step file {root}/{step} does not exist")
    change = await read_change(git, checkout, base or f"{head or 'HEAD'}~1", head)
    qa = QaSubject(
        protocol_name=Path(root).name,
        step_name=step,
        plan_md=protocol_file(checkout, root, "plan.md"),
        context_md=protocol_file(checkout, root, "context.md"),
        log_md=protocol_file(checkout, root, "log.md"),
        step_content=protocol_file(checkout, root, step),
        git_status=change.git_status,
        last_commit=change.last_commit,
        diff=change.text,
    )
    return Subject(
        qa=qa,
        checkout=checkout,
        change=change,
        kind="step",
        title=f"step {step} of {qa.protocol_name}",
        anchor=f"{root}/{step}",
        planned_policy=_planned_policy(checkout / root, step),
    )


async def task_change(
    git: Git, checkout: Path, task: str, *, task_file: Path | None, base: str, head: str
) -> Subject:
    """A change judged against a task text (the step contract of a repository without protocols)."""
    if not task.strip():
        raise ConfigurationError("the task is empty: say what the change should do (--task or --task-file)")
    anchor = _repository_path(checkout, task_file) if task_file is not None else ""
    change = await read_change(git, checkout, base, head)
    qa = QaSubject(
        protocol_name=NO_PROTOCOL,
        step_name=task_file.name if task_file is not None else "task",
        plan_md=NO_PLAN,
        context_md=NO_PLAN,
        log_md=NO_PLAN,
        step_content=task,
        git_status=change.git_status,
        last_commit=change.last_commit,
        diff=change.text,
    )
    title = f"task in {task_file.name}" if task_file is not None else "task given with --task"
    return Subject(qa=qa, checkout=checkout, change=change, kind="task", title=title, anchor=anchor)


async def read_change(git: Git, checkout: Path, base: str, head: str) -> Change:
    """The change from the merge base of ``base`` and ``head`` (HEAD and the working tree if empty)."""
    tip = await _commit(git, checkout, head or "HEAD", "--head" if head else "HEAD")
    base_commit = await _commit(git, checkout, base, "--base")
    merge_base = await git.execute("merge-base", base_commit, tip, cwd=checkout)
    if not merge_base.ok:
        raise ConfigurationError(f"--base {base} and {head or 'HEAD'} have no common history")
    since = merge_base.stdout.strip()
    if head:
        diff = await git.run("diff", "--no-ext-diff", "--end-of-options", since, tip, "--", cwd=checkout)
        names = await git.run("diff", "--name-only", "-z", "--no-renames", since, tip, "--", cwd=checkout)
        changed = sorted({n for n in names.split("\0") if n})
    else:
        diff = await working_tree_diff(git, checkout, since, max_bytes=FULL_DIFF_LIMIT)
        changed = await changed_paths(git, checkout, since)
    commits = await git.run("log", "--format=%H %s", f"{since}..{tip}", "--", cwd=checkout)
    status = await git.run("status", "--porcelain=v1", "--untracked-files=all", cwd=checkout)
    subject = await git.run("log", "-1", "--format=%s", tip, "--", cwd=checkout)
    return Change(
        base=base,
        base_sha=since,
        head=head,
        commits=commits,
        diff=diff,
        changed_files=tuple(changed),
        git_status=status if not head else "",
        last_commit=subject.strip(),
    )


async def _commit(git: Git, checkout: Path, ref: str, option: str) -> str:
    try:
        out = await git.run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", cwd=checkout
        )
    except GitCommandError:
        raise ConfigurationError(
            f"{option} {ref}: no such commit in {checkout} (in a shallow clone, fetch more history)"
        ) from None
    return out.strip()


def _directory(path: Path) -> Path:
    if not path.is_dir():
        raise ConfigurationError(f"{path} is not a directory")
    return path


def _repository_path(checkout: Path, path: Path) -> str:
    """``path`` as a path of the checkout, or "" when it is outside."""
    resolved = path.resolve()
    return resolved.relative_to(checkout).as_posix() if resolved.is_relative_to(checkout) else ""


def _inside(checkout: Path, path: Path, option: str) -> str:
    """``path`` (relative to the checkout's root, or absolute) as a path of the checkout."""
    resolved = (checkout / path).resolve()
    if not resolved.is_relative_to(checkout) or resolved == checkout:
        raise ConfigurationError(f"{option} {path} is not a folder inside the checkout {checkout}")
    if not resolved.is_dir():
        raise ConfigurationError(f"{option} {path} is not a folder")
    return resolved.relative_to(checkout).as_posix()


def _planned_policy(root: Path, step: str) -> str:
    """The step's ``qa_policy`` in the protocol's spec.json, or "" when it does not say."""
    try:
        spec = json.loads((root / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return ""
    steps = spec.get("steps") if isinstance(spec, dict) else None
    for entry in steps if isinstance(steps, list) else []:
        if isinstance(entry, dict) and entry.get("filename") == step:
            policy = entry.get("qa_policy")
            return policy if isinstance(policy, str) else ""
    return ""

"""Guardrails on every execution's change, deterministic, before it is committed and QA sees it.

Each rule reads the worktree's change against the step's base (files, lines added and removed) and the
step file, and says what it found with its evidence:

* ``scope``: files changed outside what the step file declares (a ``Scope:`` line of globs, e.g.
  ``Scope: src/greeting/**, tests/test_greeting.py``); no declaration, no rule;
* ``protected_path``: the protocol's own files (plan, context, log, step files: the contract the step
  is checked against; always), CI configuration, lock files and the paths in
  ``DEKSDENFLOW_GUARDRAIL_PROTECTED`` (unless the step file names the file: its path or its file name);
* ``diff_size``: more lines or files changed than ``DEKSDENFLOW_GUARDRAIL_MAX_LINES`` / ``_MAX_FILES``;
* ``secret``: a secret in an added line, found by ``detect-secrets`` (its default plugins);
* ``tests_weakened``: a test file deleted, or a skip marker added (``@pytest.mark.skip``/``skipif``,
  ``it.skip(``, ``t.Skip(`` …) or one test focused so that the others do not run (``it.only(``, ``fit(``);
* ``empty_change``: the first execution of a work step changed nothing (a retry or a fix may find its
  work already on the branch).

The rules read the step file as it was before the agent ran (an agent that widens its own scope in the
step file changes nothing). ``enforce`` is the loop the execution job runs: it records the findings
(``guardrail_violated``), asks the agent again with them in its prompt (``DEKSDENFLOW_GUARDRAIL_REASKS``
times), then fails the step with them as the reason.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deksdenflow_git import Worktree, working_tree_diffs

from deksdenflow_codex_worker.engines.base import AgentResult

# CI configuration and dependency lock files: a step changes them only when its file says so.
PROTECTED = (
    ".github/workflows/*",
    ".gitlab-ci.yml",
    ".gitlab/ci/*",
    ".circleci/*",
    "Jenkinsfile",
    "azure-pipelines.yml",
    ".buildkite/*",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
)
_TEST_FILE = re.compile(
    r"(^|/)(tests?|__tests__|spec)/|(^|/)test_[^/]*\.py$|_test\.(py|go)$|\.(test|spec)\.[cm]?[jt]sx?$"
)
# A test skipped or disabled, or the others left out by focusing one (``it.only``, ``fit``).
_SKIP = re.compile(
    r"@pytest\.mark\.(skip|skipif|xfail)\b|pytest\.skip\(|@unittest\.skip|\b(it|test|describe)\.(skip|only)\("
    r"|(?<![\w.])[xf](it|describe)\(|\bt\.Skip(Now|f)?\(|#\[ignore\]|@Disabled\b|@Ignore\b"
)
# "Scope: a/**, b.py", also as a list item or in bold ("- **Scope:** `a/**`").
_SCOPE = re.compile(
    r"^\s*(?:[-*]\s*)?(?P<b>(?:\*\*)?)scope(?:(?P=b)\s*:|\s*:\s*(?P=b))\s*(?P<globs>.+)$",
    re.IGNORECASE | re.MULTILINE,
)
EVIDENCE_LIMIT = 20


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    evidence: tuple[str, ...] = ()

    def __str__(self) -> str:
        shown = "; ".join(self.evidence[:5])
        return f"{self.rule}: {self.message}" + (f" ({shown})" if shown else "")


@dataclass(frozen=True)
class Change:
    """What an execution changed: each file's status and its added lines (by line number)."""

    deleted: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # every changed path (added, modified, deleted, renamed to)
    added: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    lines_added: int = 0
    lines_removed: int = 0
    # Lines added and removed per file (binary files: 0, 0).
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    max_lines: int = 5000
    max_files: int = 200
    protected: tuple[str, ...] = ()


async def read_change(wt: Worktree) -> Change:
    """The worktree's change against its base, untracked files included (as git will commit them)."""
    status, numstat, patch = await working_tree_diffs(
        wt.git,
        wt.path,
        wt.base_sha,
        ("--name-status", "--no-renames"),
        ("--numstat", "--no-renames"),
        ("--no-renames", "--unified=0", "--no-color"),
    )
    files, deleted = [], []
    for line in status.splitlines():
        kind, _, path = line.partition("\t")
        files.append(path)
        if kind.startswith("D"):
            deleted.append(path)
    sizes: dict[str, tuple[int, int]] = {}
    for line in numstat.splitlines():
        plus, minus, path = line.split("\t", 2)
        sizes[path] = (int(plus) if plus.isdigit() else 0, int(minus) if minus.isdigit() else 0)
    added_n, removed_n = sum(a for a, _ in sizes.values()), sum(r for _, r in sizes.values())
    return Change(tuple(deleted), tuple(files), _added_lines(patch), added_n, removed_n, sizes)


def _added_lines(patch: str) -> dict[str, list[tuple[int, str]]]:
    added: dict[str, list[tuple[int, str]]] = {}
    path, number = "", 0
    for line in patch.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else ""
        elif line.startswith("@@"):
            hunk = re.search(r"\+(\d+)", line)
            number = int(hunk.group(1)) if hunk else 0
        elif line.startswith("+") and path:
            added.setdefault(path, []).append((number, line[1:]))
            number += 1
    return added


def check(
    change: Change,
    step_text: str,
    *,
    work_step: bool,
    root: Path,
    limits: Limits,
    protocol_root: str = "",
) -> list[Finding]:
    """Every rule's findings on ``change`` (``root``: the worktree, for the secret scanner;
    ``protocol_root``: the protocol's folder, whose files no execution may change)."""
    findings = [
        *_protocol_files(change, protocol_root),
        *_scope(change, step_text, protocol_root),
        *_protected(change, step_text, limits.protected),
        *_size(change, limits),
        *_secrets(change, root),
        *_tests_weakened(change),
    ]
    if work_step and not change.files:
        findings.append(Finding("empty_change", "the step's execution changed no file"))
    return findings


def declared_scope(step_text: str) -> list[str]:
    """The globs of the step file's ``Scope:`` lines (none: the step has no declared scope)."""
    globs: list[str] = []
    for match in _SCOPE.finditer(step_text):
        globs += [g.strip(" `'\"") for g in match.group("globs").split(",") if g.strip(" `'\"")]
    return globs


def _matches(path: str, patterns: Iterable[str]) -> bool:
    pure = PurePosixPath(path)
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern) or pure.match(pattern):
            return True
        if pattern.endswith("/**") and (path + "/").startswith(pattern[:-2]):
            return True
    return False


def _in_protocol(path: str, protocol_root: str) -> bool:
    return bool(protocol_root) and (path == protocol_root or path.startswith(protocol_root.rstrip("/") + "/"))


def _protocol_files(change: Change, protocol_root: str) -> list[Finding]:
    touched = [p for p in change.files if _in_protocol(p, protocol_root)]
    if not touched:
        return []
    return [
        Finding(
            "protected_path",
            "the protocol's files (plan and step files) are the contract the step is checked against; "
            "never edit them (deksdenflow restored them)",
            _few(touched),
        )
    ]


def _scope(change: Change, step_text: str, protocol_root: str) -> list[Finding]:
    globs = declared_scope(step_text)
    if not globs:
        return []
    outside = [p for p in change.files if not _matches(p, globs) and not _in_protocol(p, protocol_root)]
    if not outside:
        return []
    return [Finding("scope", f"files changed outside the step's scope ({', '.join(globs)})", _few(outside))]


def _protected(change: Change, step_text: str, extra: Sequence[str]) -> list[Finding]:
    touched = [
        p
        for p in change.files
        if _matches(p, (*PROTECTED, *extra)) and p not in step_text and PurePosixPath(p).name not in step_text
    ]
    if not touched:
        return []
    return [
        Finding(
            "protected_path",
            "CI configuration, lock files and protected paths change only when the step file names them",
            _few(touched),
        )
    ]


def _size(change: Change, limits: Limits) -> list[Finding]:
    lines = change.lines_added + change.lines_removed
    found = []
    if limits.max_lines and lines > limits.max_lines:
        largest = sorted(change.sizes.items(), key=lambda item: -sum(item[1]))[:5]
        found.append(
            Finding(
                "diff_size",
                f"{lines} lines changed, more than {limits.max_lines}",
                tuple(f"{path}: +{plus} -{minus}" for path, (plus, minus) in largest),
            )
        )
    if limits.max_files and len(change.files) > limits.max_files:
        found.append(Finding("diff_size", f"{len(change.files)} files changed, more than {limits.max_files}"))
    return found


def _secrets(change: Change, root: Path) -> list[Finding]:
    from detect_secrets.core.secrets_collection import SecretsCollection  # noqa: PLC0415 - heavy import
    from detect_secrets.settings import default_settings  # noqa: PLC0415

    added = {path: {n for n, _ in lines} for path, lines in change.added.items()}
    if not added:
        return []
    evidence = []
    with default_settings():
        secrets = SecretsCollection(root=str(root))
        for path in added:
            if (root / path).is_file():
                secrets.scan_file(path)
        for path, found in secrets.data.items():
            lines = sorted({s.line_number for s in found if s.line_number in added.get(path, set())})
            kinds = sorted({s.type for s in found if s.line_number in lines})
            if lines:  # the secret itself is never repeated: where and what kind only
                evidence.append(f"{path}:{','.join(map(str, lines))} ({', '.join(kinds)})")
    if not evidence:
        return []
    return [Finding("secret", "a secret was added; keep secrets out of the repository", _few(evidence))]


def _tests_weakened(change: Change) -> list[Finding]:
    found = []
    deleted = [p for p in change.deleted if _TEST_FILE.search(p)]
    if deleted:
        found.append(Finding("tests_weakened", "test files were deleted", _few(deleted)))
    skips = [
        f"{path}:{number}: {text.strip()[:120]}"
        for path, lines in change.added.items()
        for number, text in lines
        if _SKIP.search(text)
    ]
    if skips:
        found.append(Finding("tests_weakened", "tests were skipped or disabled", _few(skips)))
    return found


def _few(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(items[:EVIDENCE_LIMIT])


def reask_note(findings: Sequence[Finding], reask: int, of: int) -> str:
    """What the agent is told when it is asked again."""
    lines = [
        f"Your previous attempt at this step broke deksdenflow's guardrails (asking again: {reask} of {of}). "
        "Fix exactly these, keep the rest of your work, and do not work around the rules:",
        *(f"- {f}" for f in findings),
    ]
    return "\n" + "\n".join(lines) + "\n"


# Asks the agent (the prompt, which re-ask this is: 0 for the first answer) and returns its answer.
Ask = Callable[[str, int], Awaitable[AgentResult]]
# Reads the worktree's change and returns what the rules find in it.
Inspect = Callable[[], Awaitable[list[Finding]]]
# Records the findings of one answer (which re-ask it was, whether the agent is asked again).
Report = Callable[[list[Finding], int, bool], Awaitable[None]]


@dataclass(frozen=True)
class Enforced:
    """The agent's last answer, and why the step fails ("": its change may be committed)."""

    result: AgentResult
    failure: str = ""


async def enforce(prompt: str, reasks: int, ask: Ask, inspect: Inspect, report: Report) -> Enforced:
    """Ask, inspect the change, and while the rules find something and re-asks are left, report it and
    ask again with the findings in the prompt; after the last re-ask the findings are the failure."""
    note = ""
    for reask in range(reasks + 1):
        result = await ask(prompt + note, reask)
        if not result.ok:
            return Enforced(result, f"the agent failed: {result.error or 'no reason given'}")
        findings = await inspect()
        if not findings:
            return Enforced(result)
        again = reask < reasks
        await report(findings, reask, again)
        if not again:
            return Enforced(result, "guardrails: " + "; ".join(map(str, findings)))
        note = reask_note(findings, reask + 1, reasks)
    raise AssertionError("unreachable: the last re-ask returns")

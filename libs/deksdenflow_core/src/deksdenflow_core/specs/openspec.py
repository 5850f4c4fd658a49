"""OpenSpec changes (``openspec/changes/<change-id>/``) read as a protocol.

A change's ``tasks.md`` is numbered sections of numbered tasks::

    ## 1. CLI init support
    - [ ] 1.1 Surface Amp in the native-tool picker ...
    - [x] 1.2 Generate ...

Each section becomes one step (its tasks, in order, are the step's checklist); a section whose tasks are
all checked is done and left out. The change's ``proposal.md`` (why, what changes, impact), ``design.md``
and its spec deltas (``specs/<capability>/spec.md``: ``## ADDED|MODIFIED|REMOVED|RENAMED Requirements``)
become the protocol's context. Problems are named by file, line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deksdenflow_core.specs.model import ImportedProtocol, ImportedStep, SpecProblem, slug

_SECTION = re.compile(r"^##\s+(?P<number>\d+)\.\s*(?P<title>.+?)\s*$")
_HEADING = re.compile(r"^#{1,2}\s+")
_TASK = re.compile(r"^\s*[-*]\s+\[(?P<done>[ xX])\]\s+(?:(?P<number>\d+(?:\.\d+)+)\s+)?(?P<text>.*)$")
_DELTA = re.compile(r"^##\s+(ADDED|MODIFIED|REMOVED|RENAMED)\s+Requirements\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ChangeTask:
    number: str
    text: str
    done: bool
    line: int


@dataclass(frozen=True)
class ChangeSection:
    number: str
    title: str
    line: int
    tasks: tuple[ChangeTask, ...]

    @property
    def done(self) -> bool:
        return bool(self.tasks) and all(t.done for t in self.tasks)


def parse_tasks(text: str, file: str = "tasks.md") -> tuple[list[ChangeSection], list[SpecProblem]]:
    sections: list[ChangeSection] = []
    problems: list[SpecProblem] = []
    current: ChangeSection | None = None
    tasks: list[ChangeTask] = []
    seen: dict[str, int] = {}

    def close() -> None:
        if current is not None:
            sections.append(ChangeSection(current.number, current.title, current.line, tuple(tasks)))

    for line, raw in enumerate(text.splitlines(), start=1):
        section = _SECTION.match(raw)
        if section:
            close()
            current, tasks = ChangeSection(section["number"], section["title"], line, ()), []
            continue
        if _HEADING.match(raw):
            close()
            current, tasks = None, []
            continue
        task = _TASK.match(raw)
        if not task:
            continue
        number, words = task["number"] or "", task["text"].strip()
        if current is None:
            problems.append(
                SpecProblem(file, line, "task", f"{number or words[:40]!r} is outside any section")
            )
            continue
        if not number:
            problems.append(
                SpecProblem(file, line, "task number", f"expected {current.number}.N before the text")
            )
        elif not number.startswith(f"{current.number}."):
            problems.append(
                SpecProblem(file, line, "task number", f"{number} is in section {current.number}")
            )
        elif number in seen:
            problems.append(
                SpecProblem(file, line, "task number", f"{number} is also on line {seen[number]}")
            )
        else:
            seen[number] = line
        if not words:
            problems.append(SpecProblem(file, line, "description", f"task {number} says nothing to do"))
        tasks.append(ChangeTask(number, words, task["done"] != " ", line))
    close()
    for s in sections:
        if not s.tasks:
            problems.append(
                SpecProblem(file, s.line, "section", f"section {s.number} ({s.title}) has no task")
            )
    if not sections:
        problems.append(SpecProblem(file, 1, "sections", "no '## N. title' section with tasks"))
    return sections, problems


def import_change(files: dict[str, str], *, change: str) -> ImportedProtocol:
    """An OpenSpec change's files (paths relative to ``openspec/changes/<change>/``) as a protocol."""
    root = f"openspec/changes/{change}"
    problems: list[SpecProblem] = []
    if "tasks.md" not in files:
        problems.append(SpecProblem(f"{root}/tasks.md", 0, "file", "missing: a change lists its tasks"))
        return ImportedProtocol(change, (), "", tuple(problems))
    if "proposal.md" not in files:
        problems.append(SpecProblem(f"{root}/proposal.md", 0, "file", "missing: a change says why in it"))
    sections, found = parse_tasks(files["tasks.md"], f"{root}/tasks.md")
    problems += found
    steps: list[ImportedStep] = []
    skipped: list[str] = []
    for s in sections:
        if s.done:
            skipped.append(f"{s.number}. {s.title}")
            continue
        lines = [
            f"# {s.number}. {s.title}",
            "",
            f"From the OpenSpec change `{root}/`. Do every open task below, as the change's proposal, design "
            "and spec deltas (in the protocol's context) say; check each off (`- [x]`) in the change's "
            "tasks.md when done.",
            "",
            *(f"- [{'x' if t.done else ' '}] {t.number} {t.text}".replace("  ", " ") for t in s.tasks),
        ]
        steps.append(ImportedStep(f"{len(steps):02d}-{slug(s.title)}.md", "\n".join(lines) + "\n"))
    deltas = sorted(p for p in files if p.startswith("specs/") and p.endswith("/spec.md"))
    for path in deltas:
        if not _DELTA.search(files[path]):
            problems.append(
                SpecProblem(
                    f"{root}/{path}", 1, "delta", "no '## ADDED|MODIFIED|REMOVED|RENAMED Requirements'"
                )
            )
    context = [f"# Context: {change}\n", f"Imported from the OpenSpec change `{root}/`.\n"]
    for name, heading in (("proposal.md", "Proposal"), ("design.md", "Design")):
        if name in files:
            context.append(f"\n## {heading} (`{name}`)\n\n{files[name].strip()}\n")
    for path in deltas:
        capability = path.split("/")[1]
        context.append(f"\n## Spec delta: {capability} (`{path}`)\n\n{files[path].strip()}\n")
    return ImportedProtocol(change, tuple(steps), "".join(context), tuple(problems), tuple(skipped))

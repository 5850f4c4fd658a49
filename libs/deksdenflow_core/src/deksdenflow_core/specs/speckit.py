"""GitHub spec-kit feature folders (``specs/NNN-feature/``) read as a protocol.

``tasks.md`` is grouped in phases (``## Phase 1: Setup``, ``## Phase 3: User Story 1 - Title (Priority:
P1)``), each a list of tasks in spec-kit's form ``- [ ] T001 [P] [US1] Description with file paths``.
Each phase becomes one step — its tasks, in order, are the step's checklist (``[P]``: may run in parallel
with the other ``[P]`` tasks of the phase; ``[USn]``: the user story, kept as a label) — and a phase whose
tasks are all checked (``- [x]``) is done and left out, so an import resumes where the feature stands.
When the run may execute steps at once (``parallel``: its policy's ``max_parallel_steps`` > 1), a phase's
open ``[P]`` tasks that follow one another (two or more) become one step each, in one parallel group, and
the phase's other tasks stay together in steps between them: a phase ``T010 [P], T011 [P], T012`` is the
steps ``T010`` and ``T011`` (executing at once) then ``T012``. Steps of a group do not tick ``tasks.md``
(they would conflict with each other); the run records them done.
``spec.md``, ``plan.md`` and the project's constitution (``.specify/memory/constitution.md``) become the
protocol's context. Sections that are not phases (dependencies, strategy, notes) are not steps.

Every problem found is a ``SpecProblem`` naming the file, the line and the field; an import with any
problem is refused before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from deksdenflow_core.specs.model import ImportedProtocol, ImportedStep, SpecProblem, slug

_PHASE = re.compile(r"^##\s+Phase\s+(?P<number>[0-9]+|N)\s*:\s*(?P<title>.+?)\s*$")
_HEADING = re.compile(r"^##\s+")
_TASK = re.compile(r"^\s*[-*]\s+\[(?P<done>[ xX])\]\s+(?P<id>T\d{3,}|TXXX)\b\s*(?P<rest>.*)$")
_MARKERS = re.compile(r"^\[(?P<marker>P|US\d+)\]\s*")
_STORY = re.compile(r"\bUser Story (?P<n>\d+)\b")
_PRIORITY = re.compile(r"\(Priority:\s*(?P<priority>P\d+)\)")


@dataclass(frozen=True)
class SpecTask:
    id: str
    description: str
    done: bool
    parallel: bool
    story: str  # "US1", or "" for a task of no user story
    line: int


@dataclass(frozen=True)
class SpecPhase:
    number: str
    title: str
    line: int
    tasks: tuple[SpecTask, ...]
    story: str = ""  # "US1" for a user story phase
    priority: str = ""  # "P1"

    @property
    def done(self) -> bool:
        return bool(self.tasks) and all(t.done for t in self.tasks)


def parse_tasks(text: str, file: str = "tasks.md") -> tuple[list[SpecPhase], list[SpecProblem]]:
    """The phases of a ``tasks.md`` and the problems in it."""
    phases: list[SpecPhase] = []
    problems: list[SpecProblem] = []
    current: SpecPhase | None = None  # the phase being read (its tasks are added when it closes)
    tasks: list[SpecTask] = []
    seen: dict[str, int] = {}

    def close() -> None:
        if current is not None:
            phases.append(replace(current, tasks=tuple(tasks)))

    for number, raw in enumerate(text.splitlines(), start=1):
        phase = _PHASE.match(raw)
        if phase:
            close()
            tasks = []
            title = " ".join(phase["title"].replace("🎯", "").split())
            of_story, priority = _STORY.search(title), _PRIORITY.search(title)
            current = SpecPhase(
                number=phase["number"],
                title=title,
                line=number,
                tasks=(),
                story=f"US{of_story['n']}" if of_story else "",
                priority=priority["priority"] if priority else "",
            )
            continue
        if _HEADING.match(raw):  # a section that is not a phase ends the phase before it
            close()
            current, tasks = None, []
            continue
        task = _TASK.match(raw)
        if not task:
            continue
        if current is None:
            problems.append(SpecProblem(file, number, "task", f"{task['id']} is outside any phase"))
            continue
        rest, parallel, story = task["rest"], False, ""
        while marker := _MARKERS.match(rest):
            if marker["marker"] == "P":
                parallel = True
            else:
                story = marker["marker"]
            rest = rest[marker.end() :]
        if task["id"] == "TXXX":
            problems.append(SpecProblem(file, number, "task id", "TXXX is the template's placeholder"))
        elif task["id"] in seen:
            problems.append(
                SpecProblem(file, number, "task id", f"{task['id']} is also on line {seen[task['id']]}")
            )
        else:
            seen[task["id"]] = number
        if not rest.strip():
            problems.append(SpecProblem(file, number, "description", f"{task['id']} says nothing to do"))
        tasks.append(SpecTask(task["id"], rest.strip(), task["done"] != " ", parallel, story, number))
    close()
    for p in phases:
        if not p.tasks:
            problems.append(SpecProblem(file, p.line, "phase", f"Phase {p.number} ({p.title}) has no task"))
    if not phases:
        problems.append(SpecProblem(file, 1, "phases", "no '## Phase N: title' section with tasks"))
    return phases, problems


def import_feature(
    files: dict[str, str], *, feature: str, constitution: str = "", parallel: bool = False
) -> ImportedProtocol:
    """A spec-kit feature folder's files (``tasks.md``, ``spec.md``, ``plan.md``, …) as a protocol;
    ``parallel``: split ``[P]`` tasks into steps that may execute at once (see the module's text)."""
    problems: list[SpecProblem] = []
    if "tasks.md" not in files:
        problems.append(SpecProblem(f"specs/{feature}/tasks.md", 0, "file", "missing: run /speckit.tasks"))
        return ImportedProtocol(feature, (), "", tuple(problems))
    where = f"specs/{feature}/tasks.md"
    phases, found = parse_tasks(files["tasks.md"], where)
    problems += found
    steps: list[ImportedStep] = []
    skipped: list[str] = []
    for phase in phases:
        if phase.done:
            skipped.append(f"Phase {phase.number}: {phase.title}")
            continue
        parts = _parallel_parts(phase) if parallel else [(phase, "")]
        for part, group in parts:
            index = len(steps)
            title = part.title if len(parts) == 1 else f"{part.tasks[0].id} {part.tasks[0].description}"
            steps.append(
                ImportedStep(
                    filename=f"{index:02d}-{slug(title)}.md",
                    content=_step_file(part, feature, in_group=bool(group)),
                    labels=tuple(sorted({t.story for t in part.tasks if t.story} | ({phase.story} - {""}))),
                    parallel_group=group,
                )
            )
    title = _title(files.get("spec.md", ""), feature)
    context = [f"# Context: {title}\n", f"Imported from the spec-kit feature `specs/{feature}/`.\n"]
    for name, heading in (("spec.md", "Specification"), ("plan.md", "Implementation plan")):
        if name in files:
            context.append(f"\n## {heading} (`{name}`)\n\n{files[name].strip()}\n")
        elif name == "spec.md":
            problems.append(
                SpecProblem(f"specs/{feature}/spec.md", 0, "file", "missing: run /speckit.specify")
            )
    if constitution.strip():
        context.append(f"\n## Constitution\n\n{constitution.strip()}\n")
    return ImportedProtocol(title, tuple(steps), "".join(context), tuple(problems), tuple(skipped))


def _parallel_parts(phase: SpecPhase) -> list[tuple[SpecPhase, str]]:
    """The phase as steps that may execute at once: each run of two or more open ``[P]`` tasks one step
    per task in a group of their own (``phase-<n>-<k>``), the tasks around them a step each run; done tasks
    left out. A phase with no such run stays one step (its done tasks kept, checked, as usual)."""
    open_tasks = [t for t in phase.tasks if not t.done]
    runs: list[list[SpecTask]] = []
    for task in open_tasks:
        if runs and runs[-1][0].parallel == task.parallel:
            runs[-1].append(task)
        else:
            runs.append([task])
    if not any(r[0].parallel and len(r) > 1 for r in runs):
        return [(phase, "")]
    parts: list[tuple[SpecPhase, str]] = []
    alone: list[SpecTask] = []  # tasks between groups (a lone [P] task among them), one step
    for k, run in enumerate(runs, start=1):
        if run[0].parallel and len(run) > 1:
            if alone:
                parts.append((replace(phase, tasks=tuple(alone)), ""))
                alone = []
            parts += [(replace(phase, tasks=(t,)), f"phase-{phase.number}-{k}") for t in run]
        else:
            alone += run
    if alone:
        parts.append((replace(phase, tasks=tuple(alone)), ""))
    return parts


def _step_file(phase: SpecPhase, feature: str, *, in_group: bool = False) -> str:
    lines = [f"# Phase {phase.number}: {phase.title}", ""]
    if phase.story:
        lines += [
            f"User story {phase.story[2:]}" + (f" (priority {phase.priority})" if phase.priority else ""),
            "",
        ]
    if in_group:
        lines += [
            f"From `specs/{feature}/tasks.md`. Do this one task: the phase's other [P] tasks are done at the "
            "same time by other steps, on other files. Do not edit tasks.md (the other steps would conflict "
            "with you there); the run records the task as done.",
            "",
        ]
    else:
        lines += [
            f"From `specs/{feature}/tasks.md`. Do every open task below; tasks marked [P] touch different "
            "files and do not depend on each other. Check each task off (`- [x]`) in the feature's tasks.md "
            "when done.",
            "",
        ]
    for t in phase.tasks:
        marks = "".join(f"[{m}] " for m in (("P",) if t.parallel else ()) + ((t.story,) if t.story else ()))
        lines.append(f"- [{'x' if t.done else ' '}] {t.id} {marks}{t.description}")
    return "\n".join(lines) + "\n"


def _title(spec: str, feature: str) -> str:
    for line in spec.splitlines():
        if line.startswith("# "):
            return line[2:].replace("Feature Specification:", "").strip() or feature
    return feature

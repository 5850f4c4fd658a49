"""CodeMachine workflow packages (today's format) read as a protocol.

A package (``codemachine.json`` manifest) holds workflow templates ``templates/workflows/*.workflow.js``
— ``steps: [resolveStep('agent', {…}), separator('…'), resolveModule('module', {…}), …]`` — and its agents
in ``config/main.agents.js``, ``config/sub.agents.js``, ``config/modules.js`` (modules are agents with a
``behavior``) and ``config/placeholders.js``. Those files are JavaScript: ``sandbox`` evaluates them (never
this process) and this module turns the values into steps:

* each ``resolveStep`` / ``resolveModule`` / ``resolveFolder`` file is a step (``NN-agent-id.md``: the
  agent's prompt, its placeholders from the package inlined), with the agent's engine and model;
* a loop (a ``loop``/``stepBack`` module, or ``loopSteps`` on a step) goes back ``loopSteps`` entries of
  the template — separators count, as in CodeMachine — when the agent's directive says ``loop``, at most
  ``loopMaxIterations`` times (CodeMachine allows no limit; here it is ``DEFAULT_MAX_ITERATIONS``), not
  running again the steps of ``loopSkip`` nor the ``executeOnce`` ones;
* a ``trigger`` module queues the ``triggerAgentId`` agent's step on the agent's ``trigger`` directive,
  at most ``TRIGGER_DEPTH`` deep; a ``checkpoint`` module, and any step (in CodeMachine every agent may ask
  for one), stops for a person's decision when the agent's directive says ``checkpoint``;
* sub-agents, the controller and the placeholders that name the project's files go into the context;
* an existing tracking file (``.codemachine/template.json``: completed and not completed steps, the chosen
  track and conditions) resumes the workflow: completed steps are left out, a step that started and did
  not complete is preceded by its ``notCompletedFallback`` agent, and steps off the track are left out.

Every problem is a ``SpecProblem`` naming the file, the line (of the call, or of the agent's id) and the
field; an import with any problem is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    LoopCause,
    StepCheckpointPolicy,
    StepLoopPolicy,
    StepPolicies,
    StepTriggerPolicy,
)
from deksdenflow_core.specs import codemachine_v1, sandbox
from deksdenflow_core.specs.model import (
    ENGINES,
    ImportedProtocol,
    ImportedStep,
    SpecProblem,
    as_dict,
    slug,
    strings,
)

ROOT = "/codemachine-package"  # where the sandbox says the package is (``__dirname`` of its files)
WORKFLOW = re.compile(r"^templates/workflows/(?P<name>[^/]+)\.workflow\.js$")
# The agents' files are where the first version kept them too (below ``.codemachine/`` there).
MAIN, SUB, MODULES, PLACEHOLDERS = (
    codemachine_v1.MAIN,
    codemachine_v1.SUB,
    codemachine_v1.MODULES,
    codemachine_v1.PLACEHOLDERS,
)
MANIFEST, TRACKING = "codemachine.json", ".codemachine/template.json"
DEFAULT_MAX_ITERATIONS = codemachine_v1.DEFAULT_MAX_ITERATIONS
TRIGGER_DEPTH = 3
MAX_WORKFLOWS = 8  # evaluated when none is named
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")

Evaluate = Callable[[dict[str, str], Sequence[str]], sandbox.Evaluated]


def manifest_name(files: dict[str, str]) -> str:
    """The package's name in its ``codemachine.json`` ("" when it has none or it is unreadable)."""
    try:
        value = json.loads(files.get(MANIFEST, "{}"))
    except (json.JSONDecodeError, RecursionError):
        return ""
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else ""


def is_package(files: dict[str, str]) -> bool:
    """Today's format: a package with at least one workflow template."""
    return any(WORKFLOW.match(path) for path in files)


def import_files(
    files: dict[str, str],
    *,
    workflow: str = "",
    tracking: str = "",
    evaluate: Evaluate = sandbox.evaluate,
) -> tuple[str, ImportedProtocol]:
    """Either format's files as a protocol: ``("package" | "workspace", protocol)``. A package's JavaScript
    is evaluated by ``evaluate`` (the sandbox); a first-version workspace is read as data only."""
    if not is_package(files):
        return "workspace", codemachine_v1.import_workspace(files)
    tracking = tracking or files.get(TRACKING, "")
    workflows = sorted(p for p in files if WORKFLOW.match(p))
    try:
        active = str(json.loads(tracking).get("activeTemplate") or "") if tracking.strip() else ""
    except (ValueError, AttributeError, RecursionError):
        active = ""  # import_package names the problem
    chosen = _path_of(workflow) if workflow else _path_of(active)
    # The workflow asked for (or tracked) only; else a few, each costing the sandbox up to its time.
    entries = [p for p in (MAIN, SUB, MODULES, PLACEHOLDERS) if p in files]
    entries += [chosen] if chosen in workflows else workflows[:MAX_WORKFLOWS]
    evaluated = evaluate({p: t for p, t in files.items() if p.endswith((".js", ".cjs", ".json"))}, entries)
    return "package", import_package(files, evaluated, workflow=workflow, tracking=tracking)


def _path_of(name: str) -> str:
    """A workflow's template path from its name, file name or path (``templates/workflows/x.workflow.js``)."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".js").removesuffix(".workflow")
    return f"templates/workflows/{stem}.workflow.js" if stem else ""


@dataclass
class _Agent:
    id: str
    name: str
    description: str
    prompt: str
    engine: str
    model: str
    file: str  # the config file that defines it
    line: int
    behavior: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Entry:
    kind: str  # step | module | folder | separator | controller
    id: str
    overrides: dict[str, Any]
    line: int
    index: int  # position in the template's steps (separators count)


@dataclass
class _Planned:
    entry: _Entry
    agent: _Agent
    phase: str
    filename: str = ""


class _Reader:
    def __init__(self, files: dict[str, str], evaluated: sandbox.Evaluated) -> None:
        self.files = files
        self.values = evaluated.values
        self.problems: list[SpecProblem] = list(evaluated.problems)

    def problem(self, file: str, line: int, where: str, message: str) -> None:
        self.problems.append(SpecProblem(file, line, where, message))

    def line_of(self, file: str, needle: str) -> int:
        for number, text in enumerate(self.files.get(file, "").splitlines(), start=1):
            if f"'{needle}'" in text or f'"{needle}"' in text:
                return number
        return 0

    def relative(self, path: str) -> str:
        """A path the package's JavaScript computed, relative to the package."""
        path = path.replace("\\", "/")
        if path.startswith(ROOT + "/"):
            return path[len(ROOT) + 1 :]
        return path.removeprefix("./")

    def prompt(self, file: str, agent_id: str, raw: Any, where: str) -> str:
        paths = raw if isinstance(raw, list) else [raw]
        parts: list[str] = []
        for path in paths:
            if not isinstance(path, str) or not path.strip():
                self.problem(
                    file, self.line_of(file, agent_id), where, f"agent '{agent_id}' has no prompt file"
                )
                return ""
            rel = self.relative(path)
            if rel not in self.files:
                self.problem(file, self.line_of(file, agent_id), where, f"{rel} is not in the package")
                return ""
            parts.append(self.files[rel].strip())
        return "\n\n---\n\n".join(parts)  # a chain of prompts: one after the other, in one step

    def agents(self, file: str, where: str = "promptPath") -> dict[str, _Agent]:
        value = self.values.get(file)
        if file not in self.files or value is None:
            return {}
        if not isinstance(value, list):
            self.problem(file, 0, "module.exports", "must be a list of agents")
            return {}
        found: dict[str, _Agent] = {}
        for index, raw in enumerate(value):
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"].strip():
                self.problem(file, 0, f"[{index}].id", "every agent needs an id")
                continue
            agent_id = raw["id"].strip()
            line = self.line_of(file, agent_id)
            if agent_id in found:
                self.problem(file, line, f"[{index}].id", f"'{agent_id}' is defined twice")
            prompt_field = "mirrorPath" if raw.get("promptPath") is None and "mirrorPath" in raw else where
            prompt = (
                ""
                if raw.get("type") == "folder"
                else self.prompt(file, agent_id, raw.get(prompt_field), prompt_field)
            )
            behavior = as_dict(raw.get("behavior"))
            found[agent_id] = _Agent(
                id=agent_id,
                name=str(raw.get("name") or agent_id),
                description=str(raw.get("description") or ""),
                prompt=prompt,
                engine=str(raw.get("engine") or ""),
                model=str(raw.get("model") or ""),
                file=file,
                line=line,
                behavior=behavior,
                extra=raw,
            )
        return found


def import_package(
    files: dict[str, str], evaluated: sandbox.Evaluated, *, workflow: str = "", tracking: str = ""
) -> ImportedProtocol:
    """A package's evaluated files (``sandbox.evaluate``) as a protocol; ``tracking``: the workspace's
    ``.codemachine/template.json`` to resume from."""
    reader = _Reader(files, evaluated)
    manifest = _manifest(reader)
    state = _tracking(reader, tracking)
    path = _choose_workflow(reader, workflow, str(state.get("activeTemplate") or ""))
    template = reader.values.get(path) if path else None
    if not path or not isinstance(template, dict):
        if path and path in reader.values:
            reader.problem(path, 0, "export default", "must be an object: {name, steps, subAgentIds}")
        return ImportedProtocol(manifest.get("name", "CodeMachine workflow"), (), "", tuple(reader.problems))
    main, subs, modules = reader.agents(MAIN), reader.agents(SUB), reader.agents(MODULES)
    title = str(template.get("name") or manifest.get("name") or path)
    entries = _entries(reader, path, template)
    planned, skipped = _plan(reader, path, entries, main, modules, state)
    named = {e.id for e in entries if e.kind != "separator"} | {p.agent.id for p in planned}
    steps = _steps(reader, path, planned, named, main, subs)
    if not steps and not reader.problems:
        reader.problem(path, 0, "steps", "no step to run" + (" (every step is completed)" if skipped else ""))
    context = _context(reader, path, manifest, template, title, main, subs)
    return ImportedProtocol(title, tuple(steps), context, tuple(reader.problems), tuple(skipped))


def _json(reader: _Reader, file: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reader.problem(file, exc.lineno, "json", exc.msg)
    except RecursionError:
        reader.problem(file, 1, "json", "nested too deep")
    return None


def _manifest(reader: _Reader) -> dict[str, str]:
    if MANIFEST not in reader.files:
        return {}
    value = _json(reader, MANIFEST, reader.files[MANIFEST])
    if value is not None and (not isinstance(value, dict) or not isinstance(value.get("name"), str)):
        reader.problem(MANIFEST, 1, "name", "the manifest needs a name")
    return {k: str(v) for k, v in as_dict(value).items() if isinstance(v, str | int | float)}


def _tracking(reader: _Reader, text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    value = _json(reader, TRACKING, text)
    if value is not None and not isinstance(value, dict):
        reader.problem(TRACKING, 1, "tracking", "must be an object (activeTemplate, completedSteps, …)")
    return as_dict(value)


def _choose_workflow(reader: _Reader, wanted: str, active: str) -> str:
    """The workflow asked for, else the one the tracking file names, else the package's only one."""
    workflows = sorted(p for p in reader.files if WORKFLOW.match(p))
    if wanted:
        if _path_of(wanted) in workflows:
            return _path_of(wanted)
        reader.problem(
            _path_of(wanted), 0, "workflow", f"no such workflow: the package has {', '.join(workflows)}"
        )
        return ""
    if active and _path_of(active) in workflows:
        return _path_of(active)
    if len(workflows) == 1:
        return workflows[0]
    names = ", ".join(p.removeprefix("templates/workflows/").removesuffix(".workflow.js") for p in workflows)
    reader.problem(
        "templates/workflows", 0, "workflow", f"the package has several workflows ({names}): name one"
    )
    return ""


def _entries(reader: _Reader, path: str, template: dict[str, Any]) -> list[_Entry]:
    raw = template.get("steps")
    if not isinstance(raw, list):
        reader.problem(path, 0, "steps", "must be a list of resolveStep / resolveModule / separator calls")
        return []
    entries: list[_Entry] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("__codemachine") not in (
            "step",
            "module",
            "folder",
            "separator",
        ):
            reader.problem(
                path,
                0,
                f"steps[{index}]",
                "is not a resolveStep / resolveModule / resolveFolder / separator call",
            )
            continue
        overrides = as_dict(item.get("overrides"))
        line = item["line"] if isinstance(item.get("line"), int) else 0
        entries.append(_Entry(item["__codemachine"], str(item.get("id")), overrides, line, index))
    return entries


def _plan(
    reader: _Reader,
    path: str,
    entries: list[_Entry],
    main: dict[str, _Agent],
    modules: dict[str, _Agent],
    state: dict[str, Any],
) -> tuple[list[_Planned], list[str]]:
    """The entries that become steps, in order, and those left out (completed, or off the chosen track)."""
    completed = _completed(state.get("completedSteps"))
    started = state.get("notCompletedSteps")
    not_completed = {i for i in started if isinstance(i, int)} if isinstance(started, list) else set()
    track = state.get("selectedTrack") if isinstance(state.get("selectedTrack"), str) else ""
    conditions = set(strings(state.get("selectedConditions")))
    planned: list[_Planned] = []
    skipped: list[str] = []
    phase = ""
    for entry in entries:
        if entry.kind == "separator":
            phase = entry.id
            continue
        agents = _resolve(reader, path, entry, main, modules)
        for agent in agents:
            label = f"{entry.index:02d} {agent.id}"
            tracks = strings(entry.overrides.get("tracks"))
            needs = strings(entry.overrides.get("conditions"))
            if entry.index in completed:
                skipped.append(f"{label} (completed)")
            elif tracks and track and track not in tracks:
                skipped.append(f"{label} (not on track {track})")
            elif needs and not set(needs) <= conditions:
                skipped.append(f"{label} (needs {', '.join(sorted(set(needs) - conditions))})")
            else:
                fallback = entry.overrides.get("notCompletedFallback")
                if entry.index in not_completed and isinstance(fallback, str):
                    if fallback in main:
                        planned.append(
                            _Planned(
                                _Entry("step", fallback, {}, entry.line, entry.index), main[fallback], phase
                            )
                        )
                    else:
                        reader.problem(
                            path, entry.line, "notCompletedFallback", f"no main agent '{fallback}' in {MAIN}"
                        )
                planned.append(_Planned(entry, agent, phase))
    return planned, skipped


def _completed(raw: Any) -> set[int]:
    """Completed step indexes: CodeMachine's ``{index: {completedAt}}``, or its older list of indexes."""
    if isinstance(raw, list):
        return {i for i in raw if isinstance(i, int)}
    if isinstance(raw, dict):
        return {
            int(k) for k, v in raw.items() if k.isdigit() and isinstance(v, dict) and v.get("completedAt")
        }
    return set()


def _resolve(
    reader: _Reader, path: str, entry: _Entry, main: dict[str, _Agent], modules: dict[str, _Agent]
) -> list[_Agent]:
    if entry.kind == "step":
        if entry.id not in main:
            reader.problem(path, entry.line, "resolveStep", f"no main agent '{entry.id}' in {MAIN}")
            return []
        return [_override(main[entry.id], entry.overrides)]
    if entry.kind == "module":
        if entry.id not in modules:
            reader.problem(path, entry.line, "resolveModule", f"no module '{entry.id}' in {MODULES}")
            return []
        return [_override(modules[entry.id], entry.overrides)]
    folder = main.get(entry.id)
    if folder is None or folder.extra.get("type") != "folder":
        reader.problem(
            path, entry.line, "resolveFolder", f"no folder agent '{entry.id}' (type: 'folder') in {MAIN}"
        )
        return []
    prefix = f"prompts/templates/{entry.id}/"
    ordered = sorted(
        (int(m[1]), p)
        for p in reader.files
        if p.startswith(prefix)
        and "/" not in p[len(prefix) :]
        and (m := re.match(r"^(\d+)\s*-", p[len(prefix) :]))
    )
    if not ordered:
        reader.problem(path, entry.line, "resolveFolder", f"no numbered prompt file in {prefix}")
    found = []
    for _, file in ordered:
        agent_id = re.sub(r"^\d+\s*-\s*", "", file[len(prefix) :]).rsplit(".", 1)[0].strip()
        found.append(
            _override(
                _Agent(
                    agent_id,
                    agent_id.replace("-", " ").title(),
                    "",
                    reader.files[file].strip(),
                    folder.engine,
                    folder.model,
                    MAIN,
                    folder.line,
                ),
                entry.overrides,
            )
        )
    return found


def _override(agent: _Agent, overrides: dict[str, Any]) -> _Agent:
    return _Agent(
        id=agent.id,
        name=str(overrides.get("agentName") or agent.name),
        description=agent.description,
        prompt=agent.prompt,
        engine=str(overrides.get("engine") or agent.engine),
        model=str(overrides.get("model") or agent.model),
        file=agent.file,
        line=agent.line,
        behavior=agent.behavior,
        extra=agent.extra,
    )


def _steps(
    reader: _Reader,
    path: str,
    planned: list[_Planned],
    named: set[str],
    main: dict[str, _Agent],
    subs: dict[str, _Agent],
) -> list[ImportedStep]:
    for number, p in enumerate(planned):
        p.filename = f"{number:02d}-{slug(p.agent.id)}.md"
    placeholders = _package_placeholders(reader)
    steps: list[ImportedStep] = []
    for number, p in enumerate(planned):
        policies = StepPolicies(
            loop=_loop(reader, path, p, number, planned, named),
            trigger=_trigger(reader, p, main, subs, placeholders),
            checkpoint=StepCheckpointPolicy(
                on_directive_only=True,
                reason=p.agent.description if p.agent.behavior.get("type") == "checkpoint" else "",
            ),
        )
        steps.append(
            ImportedStep(
                filename=p.filename,
                content=_step_file(p, path, placeholders),
                labels=(p.agent.id,),
                policies=policies,
                engine_id=ENGINES.get(p.agent.engine, ""),
                model=p.agent.model,
            )
        )
    return steps


def _loop(
    reader: _Reader, path: str, p: _Planned, number: int, planned: list[_Planned], named: set[str]
) -> StepLoopPolicy | None:
    behavior, overrides = p.agent.behavior, p.entry.overrides
    is_loop = behavior.get("type") == "loop" or "loopSteps" in overrides
    if not is_loop:
        return None
    if behavior and behavior.get("action", "stepBack") != "stepBack":
        reader.problem(
            p.agent.file,
            p.agent.line,
            "behavior.action",
            f"a loop's action is 'stepBack', not {behavior.get('action')!r}",
        )
    steps = overrides.get("loopSteps", behavior.get("steps", p.agent.extra.get("loopSteps", 1)))
    limit = overrides.get(
        "loopMaxIterations", behavior.get("maxIterations", p.agent.extra.get("loopMaxIterations"))
    )
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        reader.problem(
            path, p.entry.line, "loopSteps", f"must be a whole number of steps >= 1, not {steps!r}"
        )
        return None
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        reader.problem(path, p.entry.line, "loopMaxIterations", f"must be a whole number >= 1, not {limit!r}")
        return None
    target = max(0, p.entry.index - steps)
    in_range = [q for q in planned[: number + 1] if q.entry.index >= target]
    back_to = in_range[0].filename if in_range else p.filename
    skip_ids = overrides.get("loopSkip", behavior.get("skip")) or []
    if not isinstance(skip_ids, list) or not all(isinstance(s, str) for s in skip_ids):
        reader.problem(path, p.entry.line, "loopSkip", "must be a list of agent ids")
        skip_ids = []
    for agent_id in skip_ids:
        if agent_id not in named:  # every agent of the template, completed ones too
            reader.problem(path, p.entry.line, "loopSkip", f"'{agent_id}' is no step of the workflow")
    skip = [
        q.filename
        for q in in_range[:-1]
        if q.agent.id in skip_ids or q.entry.overrides.get("executeOnce") is True
    ]
    return StepLoopPolicy(
        back_to=back_to,
        on=(LoopCause.DIRECTIVE,),
        max_iterations=limit if isinstance(limit, int) else DEFAULT_MAX_ITERATIONS,
        skip=tuple(skip),
    )


def _trigger(
    reader: _Reader,
    p: _Planned,
    main: dict[str, _Agent],
    subs: dict[str, _Agent],
    placeholders: dict[str, str],
) -> StepTriggerPolicy | None:
    behavior = p.agent.behavior
    if behavior.get("type") != "trigger":
        return None
    target = behavior.get("triggerAgentId")
    agent = main.get(target) if isinstance(target, str) else None
    agent = agent or (subs.get(target) if isinstance(target, str) else None)
    if agent is None:
        reader.problem(
            p.agent.file, p.agent.line, "behavior.triggerAgentId", f"no agent {target!r} in {MAIN} or {SUB}"
        )
        return None
    return StepTriggerPolicy(
        agent=agent.id,
        prompt=_inline(agent.prompt, placeholders),
        on_directive_only=True,
        max_depth=TRIGGER_DEPTH,
        engine_id=ENGINES.get(agent.engine, ""),
        model=agent.model,
    )


def _package_placeholders(reader: _Reader) -> dict[str, str]:
    """``packageDir`` placeholders: files of the package, inlined into the prompts that name them."""
    value = reader.values.get(PLACEHOLDERS)
    package = value.get("packageDir") if isinstance(value, dict) else None
    if not isinstance(package, dict):
        return {}
    return {
        name: reader.files[reader.relative(path)].strip()
        for name, path in package.items()
        if isinstance(path, str) and reader.relative(path) in reader.files
    }


def _inline(prompt: str, placeholders: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: placeholders.get(m[1], m[0]), prompt)


def _step_file(p: _Planned, workflow: str, placeholders: dict[str, str]) -> str:
    kind = "module" if p.entry.kind == "module" else "agent"
    lines = [f"# {p.agent.name}", ""]
    if p.phase:
        lines += [f"Phase: {p.phase}", ""]
    lines += [
        f"CodeMachine {kind} `{p.agent.id}` of `{workflow}`."
        + (f" {p.agent.description}" if p.agent.description else ""),
        "",
    ]
    if p.agent.engine and p.agent.engine not in ENGINES:
        lines += [f"(CodeMachine ran it with {p.agent.engine}; here it runs on the run's engine.)", ""]
    lines += [_inline(p.agent.prompt, placeholders), ""]
    return "\n".join(lines)


def _context(
    reader: _Reader,
    path: str,
    manifest: dict[str, str],
    template: dict[str, Any],
    title: str,
    main: dict[str, _Agent],
    subs: dict[str, _Agent],
) -> str:
    package = manifest.get("name", "")
    origin = (
        f"the CodeMachine package `{package}` {manifest.get('version', '')}".rstrip()
        if package
        else "a CodeMachine package"
    )
    parts = [f"# Context: {title}\n", f"Imported from {origin} (`{path}`).\n"]
    if manifest.get("description"):
        parts.append(f"\n{manifest['description']}\n")
    placeholders = _package_placeholders(reader)
    controller = template.get("controller")
    if isinstance(controller, dict) and isinstance(controller.get("id"), str) and controller["id"] in main:
        agent = main[str(controller["id"])]
        parts.append(
            f"\n## Controller `{agent.id}` ({agent.name})\n\nBefore the workflow, CodeMachine's controller "
            f"talks with the person; its instructions:\n\n{_inline(agent.prompt, placeholders)}\n"
        )
    wanted = template.get("subAgentIds") if isinstance(template.get("subAgentIds"), list) else []
    if wanted:
        parts.append("\n## Sub-agents\n\nThe steps may hand work to these agents (do it as they would):\n")
        for sub_id in wanted:
            sub = subs.get(str(sub_id))
            if sub is None:
                reader.problem(
                    path,
                    reader.line_of(path, str(sub_id)),
                    "subAgentIds",
                    f"no sub-agent '{sub_id}' in {SUB}",
                )
                continue
            prompt = _inline(sub.prompt, placeholders)
            parts.append(f"\n### `{sub.id}` — {sub.name}\n\n{sub.description}\n\n{prompt}\n")
    value = reader.values.get(PLACEHOLDERS)
    project = value.get("userDir") if isinstance(value, dict) else None
    if isinstance(project, dict) and project:
        parts.append("\n## Placeholders\n\nIn the prompts, `{name}` stands for the repository's file:\n\n")
        parts.extend(f"* `{{{name}}}`: `{p}`\n" for name, p in project.items() if isinstance(p, str))
    parts.append(
        "\n## Directives\n\nWhere a prompt says to write `.codemachine/memory/directive.json` (`loop`, "
        "`stop`, `checkpoint`, `trigger`, `error` with a reason), give it as the step's directive.\n"
    )
    return "".join(parts)

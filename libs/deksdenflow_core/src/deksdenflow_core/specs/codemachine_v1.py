"""The first version's CodeMachine workspaces read as a protocol: ``.codemachine/config/main.agents.js``,
``sub.agents.js``, ``modules.js``, ``placeholders.js`` whose content is data — JSON or a Python literal,
optionally after ``export default``, ``module.exports =`` or ``const name =`` — and ``.codemachine/
template.json`` (the template's name, version, defaults).

Nothing is evaluated: the text is read with ``json`` or parsed by ``ast`` and only literal nodes are taken
(JavaScript's ``true``/``false``/``null`` and unquoted keys too); anything else is a problem at its line.
Each main agent is a step, in order, its prompt file its content. A module attaches to the agents that
name it (``moduleId``) or that it names (``targetAgentId``): a loop goes back ``stepBack`` steps on a failed
execution or QA, up to ``maxIterations``, not running again the step indexes of ``skip``; a trigger queues
the ``triggerAgentId`` agent's step when the step completes (3 deep at most), as the first version did.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    LoopCause,
    StepLoopPolicy,
    StepPolicies,
    StepTriggerPolicy,
)
from deksdenflow_core.specs.model import (
    ENGINES,
    ImportedProtocol,
    ImportedStep,
    SpecProblem,
    as_dict,
    slug,
    strings,
)

MAIN, SUB, MODULES, PLACEHOLDERS = (
    "config/main.agents.js",
    "config/sub.agents.js",
    "config/modules.js",
    "config/placeholders.js",
)
TEMPLATE = "template.json"
DEFAULT_MAX_ITERATIONS = 5
TRIGGER_DEPTH = 3
_WRAPPER = re.compile(r"^\s*(?:export\s+default\s+|module\.exports\s*=\s*|(?:const|let|var)\s+\w+\s*=\s*)")
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


@dataclass(frozen=True)
class _Agent:
    id: str
    name: str
    description: str
    prompt: str
    engine: str
    model: str
    modules: tuple[str, ...]  # the modules it names (moduleId)


class _NotLiteral(ValueError):
    def __init__(self, node: ast.AST) -> None:
        super().__init__(ast.unparse(node)[:60])
        self.line = getattr(node, "lineno", 1)


def parse_literal(text: str, file: str) -> tuple[Any, list[SpecProblem]]:
    """The data in a first-version config file, or the problem (with its line) that makes it unreadable."""
    wrapper = _WRAPPER.match(text)
    start = wrapper.end() if wrapper else 0
    offset = text.count("\n", 0, start)
    candidate = text[start:].strip().removesuffix(";").rstrip()
    offset += text[start:].count("\n", 0, len(text[start:]) - len(text[start:].lstrip()))
    try:
        return json.loads(candidate), []
    except json.JSONDecodeError:
        pass
    except RecursionError:
        return None, [SpecProblem(file, offset + 1, "value", "nested too deep")]
    try:
        tree = ast.parse(candidate, mode="eval")
    except (RecursionError, MemoryError):
        return None, [SpecProblem(file, offset + 1, "value", "nested too deep")]
    except SyntaxError as exc:
        return None, [
            SpecProblem(file, offset + (exc.lineno or 1), "syntax", f"neither JSON nor a literal: {exc.msg}")
        ]
    try:
        return _literal(tree.body), []
    except RecursionError:
        return None, [SpecProblem(file, offset + 1, "value", "nested too deep")]
    except _NotLiteral as exc:
        return None, [
            SpecProblem(
                file,
                offset + exc.line,
                "value",
                f"{exc} is not data (JSON or a literal only: nothing is run)",
            )
        ]


def _literal(node: ast.AST, key: bool = False) -> Any:
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, str | int | float | bool)
    ):
        return node.value
    if isinstance(node, ast.Name) and (key or node.id in _CONSTANTS):
        return node.id if key else _CONSTANTS[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        found: dict[Any, Any] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            name = _literal(key_node, key=True) if key_node is not None else None  # None: a ** spread
            if key_node is None or not isinstance(name, str | int | float | bool):
                raise _NotLiteral(key_node or value_node)
            found[name] = _literal(value_node)
        return found
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise _NotLiteral(node)


def is_workspace(files: dict[str, str]) -> bool:
    return MAIN in _normalised(files)


def _normalised(files: dict[str, str]) -> dict[str, str]:
    return {p.removeprefix("./").removeprefix(".codemachine/"): t for p, t in files.items()}


def import_workspace(files: dict[str, str]) -> ImportedProtocol:
    """A first-version ``.codemachine`` workspace's files (paths within it, or with ``.codemachine/``)."""
    files = _normalised(files)
    problems: list[SpecProblem] = []

    def load(name: str, kind: type) -> Any:
        if name not in files:
            return kind()
        value, found = parse_literal(files[name], f".codemachine/{name}")
        problems.extend(found)
        if value is not None and not isinstance(value, kind):
            problems.append(SpecProblem(f".codemachine/{name}", 1, "value", f"must be a {kind.__name__}"))
            return kind()
        return value if value is not None else kind()

    if MAIN not in files:
        problems.append(
            SpecProblem(f".codemachine/{MAIN}", 0, "file", "missing: the workspace has no main agents")
        )
    main, subs = load(MAIN, list), load(SUB, list)
    modules, placeholders, template = load(MODULES, list), load(PLACEHOLDERS, dict), load(TEMPLATE, dict)
    agents = [_agent(files, MAIN, i, a, problems) for i, a in enumerate(main)]
    helpers = {a.id: a for a in (_agent(files, SUB, i, s, problems) for i, s in enumerate(subs)) if a}
    steps_of = [a for a in agents if a]
    helpers |= {a.id: a for a in steps_of}
    names = [f"{n:02d}-{slug(a.id)}.md" for n, a in enumerate(steps_of)]
    steps: list[ImportedStep] = []
    for n, agent in enumerate(steps_of):
        policies = _policies(files, modules, agent, n, names, helpers, problems)
        about = f"CodeMachine agent `{agent.id}`." + (f" {agent.description}" if agent.description else "")
        content = f"# {agent.name}\n\n{about}\n\n{agent.prompt}\n"
        steps.append(ImportedStep(names[n], content, (agent.id,), policies, agent.engine, agent.model))
    title = str(template.get("template") or template.get("name") or "CodeMachine workspace")
    context = [
        f"# Context: {title}\n",
        "Imported from a CodeMachine workspace (`.codemachine/`, first version's format)",
    ]
    context.append(f", version {template['version']}.\n" if template.get("version") else ".\n")
    subs_read = [helpers[s["id"]] for s in subs if isinstance(s, dict) and s.get("id") in helpers]
    if subs_read:
        context.append("\n## Sub-agents\n")
        context.extend(f"\n### `{s.id}` — {s.name}\n\n{s.description}\n\n{s.prompt}\n" for s in subs_read)
    if placeholders:
        context.append("\n## Placeholders\n\n")
        context.extend(f"* `{k}`: {json.dumps(v)}\n" for k, v in placeholders.items())
    return ImportedProtocol(title, tuple(steps), "".join(context), tuple(problems))


def _policies(
    files: dict[str, str],
    modules: list[Any],
    agent: _Agent,
    n: int,
    names: list[str],
    helpers: dict[str, _Agent],
    problems: list[SpecProblem],
) -> StepPolicies | None:
    """The loop and trigger of the modules attached to the ``n``-th step's agent."""
    loop: StepLoopPolicy | None = None
    trigger: StepTriggerPolicy | None = None
    attached = [m for m in modules if isinstance(m, dict) and _attaches(m, agent)]
    for module in attached:
        behavior = as_dict(module.get("behavior"))
        kind = str(behavior.get("type") or module.get("behavior") or "").lower()
        where = f".codemachine/{MODULES}"
        line = _line_of(files.get(MODULES, ""), str(module.get("id") or ""))
        if kind == "loop":
            back = behavior.get("stepBack", behavior.get("step_back", 1))
            limit = behavior.get("maxIterations", behavior.get("max_iterations", DEFAULT_MAX_ITERATIONS))
            if not isinstance(back, int) or back < 1 or not isinstance(limit, int) or limit < 1:
                problems.append(
                    SpecProblem(
                        where, line, "behavior", "stepBack and maxIterations must be whole numbers >= 1"
                    )
                )
                continue
            first = max(0, n - back)
            skip = behavior.get("skip", behavior.get("skipSteps", [])) or []
            loop = StepLoopPolicy(
                back_to=names[first],
                on=(LoopCause.EXECUTION_FAILED, LoopCause.QA_FAILED),
                max_iterations=limit,
                skip=tuple(names[i] for i in skip if isinstance(i, int) and first <= i < n),
            )
        elif kind == "trigger":
            target = behavior.get("triggerAgentId") or behavior.get("trigger_agent_id")
            if target not in helpers:
                problems.append(
                    SpecProblem(
                        where, line, "behavior.triggerAgentId", f"no agent {target!r} in the workspace"
                    )
                )
                continue
            called = helpers[target]
            trigger = StepTriggerPolicy(
                agent=called.id,
                prompt=called.prompt,
                max_depth=TRIGGER_DEPTH,
                engine_id=called.engine,
                model=called.model,
            )
        else:
            problems.append(
                SpecProblem(
                    where, line, "behavior.type", f"{kind or 'nothing'}: a module is a loop or a trigger"
                )
            )
    return StepPolicies(loop=loop, trigger=trigger) if loop or trigger else None


def _agent(
    files: dict[str, str], file: str, index: int, raw: Any, problems: list[SpecProblem]
) -> _Agent | None:
    where = f".codemachine/{file}"
    if not isinstance(raw, dict):
        problems.append(SpecProblem(where, 0, f"[{index}]", "an agent is an object"))
        return None
    agent_id = str(raw.get("id") or raw.get("agentId") or "").strip()
    if not agent_id:
        problems.append(SpecProblem(where, 0, f"[{index}].id", "every agent needs an id"))
        return None
    line = _line_of(files.get(file, ""), agent_id)
    path = raw.get("promptPath") or raw.get("prompt") or raw.get("path") or raw.get("mirrorPath")
    if not isinstance(path, str) or not path.strip():
        problems.append(SpecProblem(where, line, "promptPath", f"agent '{agent_id}' has no prompt file"))
        return None
    prompt_file = path.strip().removeprefix("./").removeprefix(".codemachine/")
    if prompt_file not in files:
        problems.append(SpecProblem(where, line, "promptPath", f"{prompt_file} is not in the workspace"))
        return None
    modules = raw.get("moduleId") or raw.get("module_id") or raw.get("module") or []
    modules = [modules] if isinstance(modules, str) else strings(modules)
    return _Agent(
        id=agent_id,
        name=str(raw.get("name") or agent_id),
        description=str(raw.get("description") or ""),
        prompt=files[prompt_file].strip(),
        engine=ENGINES.get(str(raw.get("engineId") or raw.get("engine") or ""), ""),
        model=str(raw.get("model") or ""),
        modules=tuple(modules),
    )


def _attaches(module: dict[str, Any], agent: _Agent) -> bool:
    module_id = str(module.get("id") or module.get("module_id") or module.get("name") or "")
    behavior = as_dict(module.get("behavior"))
    target = module.get("targetAgentId") or module.get("target_agent_id") or behavior.get("targetAgentId")
    return module_id in agent.modules or target == agent.id


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle and (f"'{needle}'" in line or f'"{needle}"' in line):
            return number
    return 0

"""CodeMachine read as protocols: golden tests on the published codemachine-one package (its JavaScript
evaluated in the Node sandbox) and on a first-version workspace (read as data only); malicious templates
stopped by the sandbox with the file named; problems named by file, line and field."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import LoopCause
from deksdenflow_core.specs import codemachine, codemachine_v1, sandbox

DATA = Path(__file__).parent / "data" / "codemachine"
PACKAGE = DATA / "codemachine-one"


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def published() -> tuple[dict[str, str], sandbox.Evaluated]:
    files = files_of(PACKAGE)
    entries = [codemachine.MAIN, codemachine.SUB, codemachine.MODULES, codemachine.PLACEHOLDERS]
    return files, sandbox.evaluate(files, [*entries, "templates/workflows/codemachine-one.workflow.js"])


def test_the_published_package_imports_as_steps_with_its_loop(
    published: tuple[dict[str, str], sandbox.Evaluated],
) -> None:
    files, evaluated = published
    imported = codemachine.import_package(files, evaluated)
    assert imported.problems == ()
    assert imported.title == "CodeMachine-One Workflow"
    assert [(s.filename, s.labels) for s in imported.steps] == [
        ("00-init.md", ("init",)),
        ("01-principal-analyst.md", ("principal-analyst",)),
        ("02-blueprint-orchestrator.md", ("blueprint-orchestrator",)),
        ("03-plan-agent.md", ("plan-agent",)),
        ("04-task-breakdown.md", ("task-breakdown",)),
        ("05-git-commit.md", ("git-commit",)),
        ("06-context-manager.md", ("context-manager",)),
        ("07-code-generation.md", ("code-generation",)),
        ("08-runtime-prep.md", ("runtime-prep",)),
        ("09-task-sanity-check.md", ("task-sanity-check",)),
        ("10-git-commit.md", ("git-commit",)),
        ("11-check-task.md", ("check-task",)),
    ]
    # resolveModule('check-task', {loopSteps: 6, loopMaxIterations: 20, loopSkip: ['runtime-prep']}):
    # six template entries back (the separator counts) is context-manager; runtime-prep is not run again
    gate = imported.steps[-1]
    assert gate.policies is not None
    assert gate.policies.loop is not None
    loop = gate.policies.loop
    assert (loop.back_to, loop.max_iterations, loop.skip) == (
        "06-context-manager.md",
        20,
        ("08-runtime-prep.md",),
    )
    assert loop.on == (LoopCause.DIRECTIVE,)
    assert "**// PROTOCOL: TaskCompletionChecker_v1.0**" in gate.content
    init = imported.steps[0]
    assert init.policies is not None
    assert init.policies.loop is None
    assert init.policies.checkpoint is not None
    assert init.policies.checkpoint.on_directive_only
    # the path.join'ed prompt, its {error_escalation} placeholder inlined from the package
    assert "Ensure the current branch is `codemachine/dev`" in init.content
    assert "#### **Error Escalation Protocol**" in init.content
    assert "{error_escalation}" not in init.content
    assert "Phase: ⟲ Development Cycle ⟲" in imported.steps[6].content
    assert "### `file-assembler` — File Assembler" in imported.context_md  # the sub-agents
    assert "* `{specifications}`: `.codemachine/inputs/specifications.md`" in imported.context_md


def test_a_tracking_file_resumes_from_the_completed_steps(
    published: tuple[dict[str, str], sandbox.Evaluated],
) -> None:
    files, evaluated = published
    done = {"completedAt": "2026-01-01T00:00:00Z", "sessionId": "s", "monitoringId": 1}
    tracking = {
        "activeTemplate": "codemachine-one.workflow.js",
        "completedSteps": {"0": done, "1": done, "3": done, "4": {"sessionId": "s", "monitoringId": 2}},
        "notCompletedSteps": [4],  # plan-agent started and did not complete: its fallback runs first
        "resumeFromLastStep": True,
    }
    imported = codemachine.import_package(files, evaluated, tracking=json.dumps(tracking))
    assert imported.problems == ()
    assert imported.skipped == (
        "00 init (completed)",
        "01 principal-analyst (completed)",
        "03 blueprint-orchestrator (completed)",
    )
    assert [s.filename for s in imported.steps][:3] == [
        "00-plan-fallback.md",
        "01-plan-agent.md",
        "02-task-breakdown.md",
    ]
    assert imported.steps[-1].policies is not None
    assert imported.steps[-1].policies.loop is not None
    assert imported.steps[-1].policies.loop.back_to == "04-context-manager.md"
    broken = codemachine.import_package(files, evaluated, tracking='{"completedSteps": [0,\n}')
    assert [str(p) for p in broken.problems] == [".codemachine/template.json:2: json: Expecting value"]


MALICIOUS = {
    "config/main.agents.js": "module.exports = [{ id: 'a', promptPath: 'a.md' }];\n",
    "a.md": "Do a.\n",
    "templates/workflows/network.workflow.js": (
        "const http = require('http');\nhttp.get('http://127.0.0.1:9/');\n"
        "export default { name: 'n', steps: [] };\n"
    ),
    "templates/workflows/fetch.workflow.js": "fetch('http://127.0.0.1:9/');\nexport default { steps: [] };\n",
    "templates/workflows/writes.workflow.js": "require('fs').writeFileSync('{target}', 'pwned');\n",
    "templates/workflows/spawn.workflow.js": "require('child_process').execSync('touch {target}');\n",
    "templates/workflows/escape.workflow.js": (
        "const process = globalThis.constructor.constructor('return process')();\n"
        "process.mainModule.require('fs').writeFileSync('{target}', 'pwned');\n"
    ),
    "templates/workflows/escape2.workflow.js": (
        "const p = resolveStep.constructor('return process')();\nexport default p;\n"
    ),
    "templates/workflows/loop.workflow.js": "export default { steps: [] };\nwhile (true) {}\n",
}


def test_malicious_templates_are_stopped_by_the_sandbox_naming_their_file(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    files = {path: text.replace("{target}", str(target)) for path, text in MALICIOUS.items()}
    names = ["network", "fetch", "writes", "spawn", "escape", "escape2", "loop"]  # the endless loop last
    entries = [f"templates/workflows/{n}.workflow.js" for n in names]
    evaluated = sandbox.evaluate(files, entries, per_file_ms=500)
    assert [(p.file, p.line, p.field) for p in evaluated.problems] == [
        ("templates/workflows/network.workflow.js", 1, "javascript"),
        ("templates/workflows/fetch.workflow.js", 1, "javascript"),
        ("templates/workflows/writes.workflow.js", 1, "javascript"),
        ("templates/workflows/spawn.workflow.js", 1, "javascript"),
        ("templates/workflows/escape.workflow.js", 1, "javascript"),
        ("templates/workflows/escape2.workflow.js", 1, "javascript"),
        ("templates/workflows/loop.workflow.js", 0, "javascript"),
    ]
    messages = [p.message for p in evaluated.problems]
    assert (
        messages[0]
        == "require('http') is not allowed: a CodeMachine package may require only 'path' and its own files"
    )
    assert messages[1] == "fetch is not defined"
    assert "require('fs') is not allowed" in messages[2]
    assert "require('child_process') is not allowed" in messages[3]
    assert messages[4] == messages[5] == "Code generation from strings disallowed for this context"
    assert messages[6] == "did not finish within 500 ms (an endless loop?): stopped"
    assert evaluated.values == {}
    assert not target.exists()
    # through the import: refused, the file named
    kind, imported = codemachine.import_files(
        {k: v for k, v in files.items() if not k.startswith("templates/") or "loop" in k},
        workflow="loop",
        evaluate=functools.partial(sandbox.evaluate, per_file_ms=300),
    )
    assert kind == "package"
    assert imported.steps == ()
    assert [str(p) for p in imported.problems] == [
        "templates/workflows/loop.workflow.js:0: javascript: "
        "did not finish within 300 ms (an endless loop?): stopped"
    ]


def test_a_template_that_exhausts_memory_is_stopped_naming_its_file() -> None:
    files = {
        "templates/workflows/big.workflow.js": "const a = [];\nwhile (true) a.push(new Array(1e6).fill(1));\n"
    }
    evaluated = sandbox.evaluate(files, list(files), per_file_ms=5000)
    assert [str(p) for p in evaluated.problems] == [
        "templates/workflows/big.workflow.js:0: javascript: stopped by the sandbox: "
        f"it used more than {sandbox.HEAP_MB} MB or more than its time"
    ]


def test_problems_of_a_package_name_the_file_line_and_field() -> None:
    files = {
        "codemachine.json": '{"name": "broken"}',
        "config/main.agents.js": (
            "module.exports = [\n  { id: 'a', promptPath: 'prompts/a.md' },\n  { id: 'b' },\n];\n"
        ),
        "config/modules.js": (
            "module.exports = [{ id: 'm', promptPath: 'prompts/a.md',"
            " behavior: {type: 'trigger', triggerAgentId: 'nobody'} }];\n"
        ),
        "prompts/a.md": "Do a.\n",
        "templates/workflows/w.workflow.js": (
            "export default {\n  name: 'W',\n  steps: [\n    resolveStep('a', { loopSteps: 0 }),\n"
            "    resolveStep('ghost'),\n    resolveModule('m'),\n  ],\n};\n"
        ),
        "templates/workflows/syntax.workflow.js": (
            "export default {\n  steps: [\n    resolveStep('a'\n  ],\n};\n"
        ),
    }
    _, imported = codemachine.import_files(files, workflow="w")
    assert [str(p) for p in imported.problems] == [
        "templates/workflows/syntax.workflow.js:3: javascript: SyntaxError: missing ) after argument list",
        "config/main.agents.js:3: promptPath: agent 'b' has no prompt file",
        "templates/workflows/w.workflow.js:5: resolveStep: no main agent 'ghost' in config/main.agents.js",
        "templates/workflows/w.workflow.js:4: loopSteps: must be a whole number of steps >= 1, not 0",
        "config/modules.js:1: behavior.triggerAgentId: "
        "no agent 'nobody' in config/main.agents.js or config/sub.agents.js",
    ]


def test_a_first_version_workspace_imports_as_data_with_its_policies() -> None:
    kind, imported = codemachine.import_files(files_of(DATA / "first-version"))
    assert kind == "workspace"
    assert imported.problems == ()
    assert imported.title == "spec-to-code"
    assert [(s.filename, s.labels, s.model) for s in imported.steps] == [
        ("00-plan.md", ("plan",), "gpt-5.1-high"),
        ("01-build.md", ("build",), ""),
        ("02-review.md", ("review",), ""),
    ]
    build, review = imported.steps[1].policies, imported.steps[2].policies
    assert build is not None
    assert build.loop is not None
    assert (build.loop.back_to, build.loop.max_iterations) == ("00-plan.md", 3)
    assert build.loop.on == (LoopCause.EXECUTION_FAILED, LoopCause.QA_FAILED)
    assert review is not None
    assert review.trigger is not None
    assert (review.trigger.agent, review.trigger.max_depth) == ("qa", 3)
    assert "try greet('Ada') by hand" in review.trigger.prompt
    assert "Implement greet(name) in src/greet.py" in imported.steps[1].content
    assert "version 1.2.3" in imported.context_md
    assert "`specification`" in imported.context_md


def test_a_first_version_file_is_data_only_and_anything_else_is_refused_at_its_line() -> None:
    value, problems = codemachine_v1.parse_literal(
        "export default [\n  { id: 'x', promptPath: 'p.md', on: true, n: -1 },\n];\n", "main.agents.js"
    )
    assert problems == []
    assert value == [{"id": "x", "promptPath": "p.md", "on": True, "n": -1}]
    _, problems = codemachine_v1.parse_literal(
        "module.exports = [\n  { 'id': 'x' },\n  __import__('os').system('touch /tmp/x'),\n];\n",
        "main.agents.js",
    )
    assert [str(p) for p in problems] == [
        "main.agents.js:3: value: __import__('os').system('touch /tmp/x') "
        "is not data (JSON or a literal only: nothing is run)"
    ]
    imported = codemachine_v1.import_workspace(
        {"config/main.agents.js": "[{'id': 'a', 'promptPath': 'gone.md'}]"}
    )
    assert [str(p) for p in imported.problems] == [
        ".codemachine/config/main.agents.js:1: promptPath: gone.md is not in the workspace"
    ]


def test_values_of_any_shape_are_problems_or_ignored_never_a_crash() -> None:
    files = {
        "codemachine.json": "[1]",
        "config/main.agents.js": "module.exports = [{ id: 'a', promptPath: ['a.md', 'a.md'] }, 7];\n",
        "a.md": "Do a.\n",
        "templates/workflows/w.workflow.js": (
            "export default {\n  controller: { id: ['x'] },\n  subAgentIds: [{}],\n  steps: [\n"
            "    { __codemachine: 'step', id: 'a', line: 'x',\n"
            "      overrides: { tracks: {t: 1}, conditions: [{}] } },\n"
            "    resolveStep('a', { loopSteps: 1, loopSkip: 'a', tracks: 'abc' }),\n    42,\n  ],\n};\n"
        ),
    }
    tracking = '{"notCompletedSteps": 5, "selectedConditions": [[1]], "selectedTrack": ["t"]}'
    _, imported = codemachine.import_files(files, tracking=tracking)
    assert [str(p) for p in imported.problems] == [
        "codemachine.json:1: name: the manifest needs a name",
        "config/main.agents.js:0: [1].id: every agent needs an id",
        "templates/workflows/w.workflow.js:0: steps[2]: "
        "is not a resolveStep / resolveModule / resolveFolder / separator call",
        "templates/workflows/w.workflow.js:7: loopSkip: must be a list of agent ids",
        "templates/workflows/w.workflow.js:0: subAgentIds: no sub-agent '{}' in config/sub.agents.js",
    ]
    assert imported.steps[0].content.count("Do a.") == 2  # a chain of prompts: one step

"""The execution agent's directive: a JSON file it leaves in the worktree (``.deksdenflow/directive.json``,
or CodeMachine's ``.codemachine/memory/directive.json``), validated against ``agent-directive`` before it is
reported. The file is taken out of the worktree either way, so it is never committed and never read
again by the next step; an invalid one is reported as the reason it was rejected, never as a directive.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import AgentDirective, DirectiveAction
from deksdenflow_git import Worktree

from deksdenflow_codex_worker.prompts import schema

DIRECTIVE_FILES = (".deksdenflow/directive.json", ".codemachine/memory/directive.json")
# The directive rides on the step's commit too, so a job that finds its work already pushed (its worker died
# before recording it) reports the same directive.
DIRECTIVE_TRAILER = "Deksdenflow-Directive"
SCHEMA = "agent-directive"
# A directive is a few lines; a bigger file is not one.
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class DirectiveRead:
    """What the agent left: its directive (None when it left none or an invalid one) and, for an invalid
    one, why it was rejected (naming the file and the field)."""

    directive: AgentDirective | None = None
    error: str = ""


def parse_directive(text: str, where: str) -> DirectiveRead:
    """The directive in ``text`` (the file ``where``), validated against its schema."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return DirectiveRead(error=f"{where}: not JSON ({exc.msg} at line {exc.lineno})")
    errors = sorted(
        jsonschema.Draft202012Validator(schema(SCHEMA)).iter_errors(value), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        field = "/".join(str(p) for p in first.path) or "(root)"
        return DirectiveRead(error=f"{where}: does not match {SCHEMA}: {field}: {first.message}")
    return DirectiveRead(
        AgentDirective(
            action=DirectiveAction[value["action"].upper()],
            reason=value.get("reason", ""),
            agent=value.get("agent", ""),
            prompt=value.get("prompt", ""),
        )
    )


def trailer_value(directive: AgentDirective) -> str:
    """The directive as one line of JSON, in the schema's own shape (read back by :func:`parse_directive`)."""
    fields = {"reason": directive.reason, "agent": directive.agent, "prompt": directive.prompt}
    return json.dumps({"action": directive.action.name.lower(), **{k: v for k, v in fields.items() if v}})


async def take_directive(wt: Worktree) -> DirectiveRead:
    """The directive the agent left in ``wt`` (the first of :data:`DIRECTIVE_FILES` there), and every
    directive file taken out of the worktree (a tracked one is put back as committed)."""
    found, removed = await asyncio.to_thread(_read_and_remove, wt.path)
    for rel in removed:
        await wt.git.run("checkout", "HEAD", "--", rel, cwd=wt.path, check=False)
    return found


def _read_and_remove(workdir: Path) -> tuple[DirectiveRead, list[str]]:
    found: DirectiveRead | None = None
    removed: list[str] = []
    for rel in DIRECTIVE_FILES:
        path = workdir / rel
        if not path.is_file():
            continue
        if found is None:
            size = path.stat().st_size
            found = (
                DirectiveRead(error=f"{rel}: {size} bytes; a directive is at most {MAX_BYTES}")
                if size > MAX_BYTES
                else parse_directive(path.read_text(errors="replace"), rel)
            )
        path.unlink()
        removed.append(rel)
    return found or DirectiveRead(), removed

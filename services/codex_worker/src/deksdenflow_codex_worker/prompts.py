"""Prompts and output schemas, versioned by content.

The prompts ship with deksdenflow (``deksdenflow_core.assets``); a project may override any of them
with its own ``.deksdenflow/prompts/<name>.md`` (onboarding installs the defaults there). Every prompt used is
identified by the first 12 hex digits of the SHA-256 of its template text; that version is recorded on
the events the call produced, so a result can always be traced to the exact prompt behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from deksdenflow_core.assets import prompt_text, schema, version_of

__all__ = ["PROJECT_PROMPTS_DIR", "Prompt", "load_prompt", "protocol_file", "schema", "version_of"]

PROJECT_PROMPTS_DIR = Path(".deksdenflow/prompts")


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str
    version: str
    source: str  # "builtin" or the project path

    def render(self, **values: object) -> str:
        """Fill ``$placeholders``; unknown ones stay as written (a project's template may use fewer)."""
        return Template(self.template).safe_substitute({k: str(v) for k, v in values.items()})


def load_prompt(name: str, workdir: Path | None = None) -> Prompt:
    """The project's override of prompt ``name`` if the worktree has one, else the built-in one."""
    if workdir is not None:
        own = workdir / PROJECT_PROMPTS_DIR / f"{name}.md"
        if own.is_file():
            text = own.read_text()
            return Prompt(name, text, version_of(text), str(PROJECT_PROMPTS_DIR / f"{name}.md"))
    text = prompt_text(name)
    return Prompt(name, text, version_of(text), "builtin")


def protocol_file(checkout: Path, root: str, name: str) -> str:
    """A protocol file of the checkout for a prompt, or a note that it is missing."""
    path = checkout / root / name
    return path.read_text() if path.is_file() else f"({root}/{name} is missing)"

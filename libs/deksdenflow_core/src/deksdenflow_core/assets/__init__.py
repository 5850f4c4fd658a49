"""Files deksdenflow ships to agents and to projects: prompt templates and output schemas.

The codex worker renders the prompts (a project may override each with ``.deksdenflow/prompts/<name>.md``)
and validates structured output against the schemas; onboarding installs both into a project as
starter assets, without overwriting anything the project already has.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

PROMPT_NAMES = ("planning", "decompose", "exec", "qa", "qa-light")
# Where each prompt is used: the agent phase whose calls it makes.
PROMPT_PHASES = {
    "planning": "planning",
    "decompose": "decompose",
    "exec": "exec",
    "qa": "qa",
    "qa-light": "qa",
}
SCHEMA_NAMES = ("protocol-planning", "step-decomposition", "qa-verdict", "agent-directive")


def prompt_text(name: str) -> str:
    if name not in PROMPT_NAMES:
        raise KeyError(f"unknown prompt {name!r}; known: {', '.join(PROMPT_NAMES)}")
    return (resources.files(__name__) / "prompts" / f"{name}.md").read_text()


def version_of(text: str) -> str:
    """A prompt's version: the first 12 hex digits of the SHA-256 of its template text (recorded on the
    events its calls produce, so a result is traced to the exact prompt behind it)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def schema_text(name: str) -> str:
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return (resources.files(__name__) / "schemas" / f"{name}.schema.json").read_text()


@cache
def schema(name: str) -> dict[str, Any]:
    """An output schema, parsed (cached: schemas are read-only)."""
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded

"""Recorded-shape webhook payloads (``payloads/*.json``), with the branch, sha and repository swappable.

Every fixture uses the same three values so tests elsewhere can point a delivery at their own project:
branch ``0001-add-login``, head sha ``1111…1111`` and repository ``acme/demo`` (GitHub and GitLab alike).
Substitution walks the parsed JSON and replaces those exact substrings inside every string value, so
URLs built from them follow (``https://github.com/acme/demo.git``, ``refs/heads/0001-add-login``) and the
result is always valid JSON whatever characters the new values hold. Other values that merely look alike
(the owner ``acme`` alone, the base sha ``2222…``) are left as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).with_name("payloads")

BRANCH = "0001-add-login"
SHA = "1" * 40
REPO = "acme/demo"

_PLACEHOLDERS = {"branch": BRANCH, "sha": SHA, "repo": REPO}


def names() -> list[str]:
    """Every fixture name (file stem), sorted."""
    return sorted(path.stem for path in DIRECTORY.glob("*.json"))


def load_json(name: str, **subst: str) -> Any:
    """The fixture ``name`` (with or without ``.json``) parsed, placeholders replaced as in :func:`load`."""
    unknown = set(subst) - set(_PLACEHOLDERS)
    if unknown:
        raise TypeError(f"unknown substitution(s) {sorted(unknown)}; use branch=, sha= or repo=")
    path = DIRECTORY / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    pairs = [(_PLACEHOLDERS[key], value) for key, value in subst.items() if value != _PLACEHOLDERS[key]]
    return _substitute(data, pairs) if pairs else data


def load(name: str, **subst: str) -> bytes:
    """The fixture ``name`` as body bytes; ``branch=``, ``sha=``, ``repo=`` replace the known values.

    Without substitutions the bytes are the file's exact content, as a forge would have sent them.
    """
    if not subst:
        path = DIRECTORY / (name if name.endswith(".json") else f"{name}.json")
        return path.read_bytes()
    return json.dumps(load_json(name, **subst), indent=2).encode()


def _substitute(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in pairs:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_substitute(item, pairs) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, pairs) for key, item in value.items()}
    return value

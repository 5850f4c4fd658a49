"""Validation of the names that end up in paths and refspecs.

Project and job ids become directory names, branch names become refspecs and arguments: checking
them up front turns a malformed id into a clear ``ValueError`` instead of a path outside the cache,
an option injected into git, or a ``+`` refspec that would force a push.
"""

from __future__ import annotations

import re

_PATH_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
# The rules of ``git check-ref-format --branch``, minus the ones a leading character check covers.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def check_path_component(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe single directory name (letters, digits, ``._-``), else raise."""
    if not _PATH_COMPONENT.fullmatch(value) or value.endswith(".lock"):
        raise ValueError(f"{kind} {value!r} is not usable as a directory name (letters, digits, '._-')")
    return value


def check_branch_name(value: str) -> str:
    """Return ``value`` if it is a valid branch name that cannot be read as an option, else raise."""
    components = value.split("/")
    if (
        not value
        or value.startswith(("-", "+", "/"))
        or value.endswith(("/", "."))
        or value == "@"
        or _BAD_REF_CHARS.search(value)
        or any(c.startswith(".") or c.endswith(".lock") for c in components)
    ):
        raise ValueError(f"{value!r} is not a valid branch name")
    return value

"""A spec folder on the local disk as the API takes it: which kind it is and, for CodeMachine, which of
its files are sent (``protocol import`` and ``spec validate`` read folders the same way)."""

from __future__ import annotations

from pathlib import Path

# A CodeMachine workspace's run state (today's format), not its definition: never sent. Its prompts/ is
# sent: the first version kept the agents' prompts there.
_CODEMACHINE_STATE = (".codemachine/logs", ".codemachine/memory", ".codemachine/agents")


def is_codemachine(folder: Path) -> bool:
    """A CodeMachine package (today's format) or first-version workspace."""
    return (
        (folder / "codemachine.json").is_file()
        or (folder / "templates" / "workflows").is_dir()
        or (folder / ".codemachine" / "config").is_dir()
        or (folder / "config" / "main.agents.js").is_file()
    )


def kind_of(folder: Path) -> str:
    """codemachine, openspec or (otherwise) speckit."""
    if is_codemachine(folder):
        return "codemachine"
    if (folder / "proposal.md").is_file() or folder.parent.name == "changes":
        return "openspec"
    return "speckit"


def codemachine_files(folder: Path) -> dict[str, str]:
    """The package's or workspace's text files by path (no VCS, dependencies or run state)."""
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        hidden = any(part.startswith(".") and part != ".codemachine" for part in rel.split("/"))
        if (
            not path.is_file()
            or hidden
            or "node_modules" in rel.split("/")
            or rel.startswith(_CODEMACHINE_STATE)
        ):
            continue
        if path.suffix in (".js", ".cjs", ".json", ".md") and path.stat().st_size <= 200_000:
            files[rel] = path.read_text(errors="replace")
    return files

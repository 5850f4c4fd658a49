"""``deksdenflow spec validate PATH``: a spec-kit feature folder (``specs/NNN-feature/``) or an OpenSpec
change (``openspec/changes/<id>/``) checked as the protocol it would import as, on the local disk, with no
server: the steps it makes, the phases already done, and every problem by file, line and field.

Exit codes: 0 valid · 1 problems found · 2 usage (no such folder, or neither kind of spec).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deksdenflow_core.specs import openspec, speckit
from deksdenflow_core.specs.model import ImportedProtocol

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text(errors="replace")
        for p in sorted(folder.rglob("*.md"))
        if p.is_file()
    }


def _constitution(folder: Path) -> str:
    for parent in (folder, *folder.parents):
        found = parent / ".specify" / "memory" / "constitution.md"
        if found.is_file():
            return found.read_text(errors="replace")
    return ""


def read(folder: Path) -> tuple[str, ImportedProtocol] | None:
    """What kind of spec ``folder`` is and the protocol it imports as (None: neither kind)."""
    files = _files(folder)
    if "tasks.md" not in files and "proposal.md" not in files and "spec.md" not in files:
        return None
    if "proposal.md" in files or folder.parent.name == "changes":
        return "openspec", openspec.import_change(files, change=folder.name)
    return "speckit", speckit.import_feature(files, feature=folder.name, constitution=_constitution(folder))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deksdenflow spec", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser("validate", help="check a spec-kit feature folder or an OpenSpec change")
    validate.add_argument("path", type=Path, metavar="PATH")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    folder: Path = args.path
    if not folder.is_dir():
        print(f"deksdenflow spec: error: {folder} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    found = read(folder)
    if found is None:
        print(
            f"deksdenflow spec: error: {folder} is neither a spec-kit feature folder (tasks.md, spec.md) "
            "nor an OpenSpec change (proposal.md, tasks.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    kind, imported = found
    if args.output == "json":
        print(
            json.dumps(
                {
                    "kind": kind,
                    "title": imported.title,
                    "steps": [{"filename": s.filename, "labels": list(s.labels)} for s in imported.steps],
                    "skipped": list(imported.skipped),
                    "problems": [
                        {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                        for p in imported.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        print(f"{kind}: {imported.title} — {len(imported.steps)} step(s)")
        for step in imported.steps:
            print(f"  {step.filename}" + (f"  [{', '.join(step.labels)}]" if step.labels else ""))
        for done in imported.skipped:
            print(f"  (done, left out: {done})")
    for problem in imported.problems:
        print(str(problem), file=sys.stderr)
    return EXIT_PROBLEMS if imported.problems else EXIT_OK

"""OpenSpec changes read as protocols: a golden test on a real change of OpenSpec's own repository, and
problems named by file, line and field."""

from __future__ import annotations

from pathlib import Path

from deksdenflow_core.specs.openspec import import_change, parse_tasks

CHANGE = Path(__file__).parent / "data" / "openspec" / "add-amp-support"


def read(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.md")}


def test_a_published_change_imports_as_one_step_per_section_with_its_proposal_and_deltas() -> None:
    imported = import_change(read(CHANGE), change="add-amp-support")
    assert imported.problems == ()
    assert [s.filename for s in imported.steps] == [
        "00-cli-init-support.md",
        "01-cli-update-support.md",
        "02-templates-and-tests.md",
    ]
    last = imported.steps[2].content
    assert last.startswith("# 3. Templates and tests\n")
    assert "- [ ] 3.2 Register the configurator in the slash command registry." in last
    assert last.count("- [ ] 3.") == 3
    for part in (
        "## Proposal (`proposal.md`)",
        "Amp is a popular AI coding agent",
        "## Spec delta: cli-init",
    ):
        assert part in imported.context_md


def test_done_sections_are_skipped_and_problems_are_named() -> None:
    text = (
        "- [ ] 0.1 Before any section\n"
        "## 1. Done\n- [x] 1.1 Did it\n"
        "## 2. Open\n- [ ] 2.1 Do it\n- [ ] 3.1 Misplaced\n- [ ] 2.1 Twice\n- [ ] No number\n"
        "## 3. Empty\n"
    )
    sections, problems = parse_tasks(text, "openspec/changes/x/tasks.md")
    assert [(s.number, s.done) for s in sections] == [("1", True), ("2", False), ("3", False)]
    assert [str(p) for p in problems] == [
        "openspec/changes/x/tasks.md:1: task: '0.1' is outside any section",
        "openspec/changes/x/tasks.md:6: task number: 3.1 is in section 2",
        "openspec/changes/x/tasks.md:7: task number: 2.1 is also on line 5",
        "openspec/changes/x/tasks.md:8: task number: expected 2.N before the text",
        "openspec/changes/x/tasks.md:9: section: section 3 (Empty) has no task",
    ]
    imported = import_change({"tasks.md": text, "specs/cap/spec.md": "# no delta\n"}, change="x")
    assert imported.skipped == ("1. Done",)
    assert "openspec/changes/x/proposal.md:0: file: missing: a change says why in it" in map(
        str, imported.problems
    )
    assert (
        "openspec/changes/x/specs/cap/spec.md:1: delta: no '## ADDED|MODIFIED|REMOVED|RENAMED Requirements'"
        in map(str, imported.problems)
    )

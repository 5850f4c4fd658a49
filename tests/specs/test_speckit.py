"""spec-kit feature folders read as protocols: golden tests on the published tasks template and on a
feature folder in spec-kit's form; problems named by file, line and field."""

from __future__ import annotations

from pathlib import Path

from deksdenflow_core.specs.speckit import import_feature, parse_tasks

DATA = Path(__file__).parent / "data" / "speckit"


def test_the_published_template_reads_as_phases_of_tasks_and_its_placeholders_are_refused() -> None:
    phases, problems = parse_tasks((DATA / "tasks-template-phases.md").read_text(), "tasks.md")
    assert [(p.number, p.story, p.priority, len(p.tasks)) for p in phases] == [
        ("1", "", "", 3),
        ("2", "", "", 6),
        ("3", "US1", "P1", 8),
        ("4", "US2", "P2", 6),
        ("N", "", "", 2),
    ]
    story = phases[2]
    assert story.title == "User Story 1 - [Title] (Priority: P1) MVP"
    first = story.tasks[0]
    assert (first.id, first.parallel, first.story, first.done) == ("T010", True, "US1", False)
    assert first.description == "Contract test for [endpoint] in tests/contract/test_[name].py"
    assert (
        story.tasks[4].description
        == "Implement [Service] in src/services/[service].py (depends on T012, T013)"
    )
    assert [str(p) for p in problems] == [
        "tasks.md:67: task id: TXXX is the template's placeholder",
        "tasks.md:68: task id: TXXX is the template's placeholder",
    ]


def test_a_feature_folder_imports_as_steps_from_its_open_phases_with_its_context() -> None:
    folder = DATA / "001-photo-albums"
    files = {p.name: p.read_text() for p in folder.iterdir()}
    imported = import_feature(
        files, feature="001-photo-albums", constitution="# Constitution\n\nTest first.\n"
    )
    assert imported.problems == ()
    assert imported.title == "Photo albums"
    assert imported.skipped == ("Phase 1: Setup (Shared Infrastructure)",)  # every task checked
    assert [(s.filename, s.labels) for s in imported.steps] == [
        ("00-foundational-blocking-prerequisites.md", ()),
        ("01-user-story-1-group-photos-into.md", ("US1",)),
        ("02-user-story-2-reorder-albums-priority.md", ("US2",)),
    ]
    foundational = imported.steps[0].content
    assert "- [x] T003 Create the SQLite schema in src/albums/db.py" in foundational
    assert "- [ ] T004 [P] Add the album repository in src/albums/repository.py" in foundational
    assert "User story 1 (priority P1)" in imported.steps[1].content
    assert (
        "- [ ] T007 [US1] Implement add_photo in src/albums/service.py (depends on T006)"
        in imported.steps[1].content
    )
    for part in (
        "## Specification (`spec.md`)",
        "FR-002",
        "## Implementation plan (`plan.md`)",
        "Test first.",
    ):
        assert part in imported.context_md


def test_problems_name_the_file_line_and_field() -> None:
    text = (
        "# Tasks\n\n- [ ] T001 Before any phase\n\n## Phase 1: Setup\n\n- [ ] T002 Do it\n"
        "- [ ] T002 Again\n- [ ] T003\n\n## Phase 2: Empty\n"
    )
    _, problems = parse_tasks(text, "specs/002-x/tasks.md")
    assert [str(p) for p in problems] == [
        "specs/002-x/tasks.md:3: task: T001 is outside any phase",
        "specs/002-x/tasks.md:8: task id: T002 is also on line 7",
        "specs/002-x/tasks.md:9: description: T003 says nothing to do",
        "specs/002-x/tasks.md:11: phase: Phase 2 (Empty) has no task",
    ]
    missing = import_feature({"spec.md": "# Feature Specification: X\n"}, feature="002-x")
    assert [str(p) for p in missing.problems] == ["specs/002-x/tasks.md:0: file: missing: run /speckit.tasks"]


def test_where_steps_may_run_at_once_a_phase_s_p_tasks_become_a_parallel_group() -> None:
    folder = DATA / "001-photo-albums"
    files = {p.name: p.read_text() for p in folder.iterdir()}
    imported = import_feature(files, feature="001-photo-albums", parallel=True)
    assert imported.problems == ()
    assert [(s.filename, s.parallel_group, s.labels) for s in imported.steps] == [
        # a lone [P] task (T004) is not a group: its phase stays one step
        ("00-foundational-blocking-prerequisites.md", "", ()),
        ("01-t005-test-album-creation-in-tests.md", "phase-3-1", ("US1",)),
        ("02-t006-create-the-album-model-in.md", "phase-3-1", ("US1",)),
        ("03-t007-implement-add-photo-in-src.md", "", ("US1",)),
        ("04-user-story-2-reorder-albums-priority.md", "", ("US2",)),
    ]
    member = imported.steps[1].content
    assert "- [ ] T005 [P] [US1] Test album creation in tests/test_albums.py" in member
    assert "T006" not in member
    assert "Do not edit tasks.md" in member
    assert "Check each task off" in imported.steps[3].content

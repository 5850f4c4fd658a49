"""``deksdenflow spec validate`` as a process: a spec-kit feature folder, an OpenSpec change and a
CodeMachine workspace checked on the local disk, with the exit codes (0 valid, 1 problems, 2 usage) and
problems by file and line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.runtime.cli_support import cli_env, deksdenflow_command

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


def spec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*deksdenflow_command(), "spec", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_valid_feature_folder_and_change_list_their_steps() -> None:
    feature = spec("validate", str(DATA / "speckit" / "001-photo-albums"))
    assert feature.returncode == 0, feature.stderr
    assert feature.stdout.splitlines()[0] == "speckit: Photo albums — 3 step(s)"
    assert "  01-user-story-1-group-photos-into.md  [US1]" in feature.stdout
    assert feature.stderr == ""
    change = spec("validate", str(DATA / "openspec" / "add-amp-support"), "-o", "json")
    assert change.returncode == 0, change.stderr
    body = json.loads(change.stdout)
    assert (body["kind"], len(body["steps"]), body["problems"]) == ("openspec", 3, [])
    workspace = spec("validate", str(DATA / "codemachine" / "first-version"))  # data only: no Node
    assert workspace.returncode == 0, workspace.stderr
    assert workspace.stdout.splitlines()[0] == "CodeMachine workspace: spec-to-code — 3 step(s)"


def test_a_feature_checked_for_a_run_that_executes_steps_at_once_shows_its_parallel_groups() -> None:
    feature = spec("validate", str(DATA / "speckit" / "001-photo-albums"), "--max-parallel-steps", "2")
    assert feature.returncode == 0, feature.stderr
    assert feature.stdout.splitlines() == [
        "speckit: Photo albums — 5 step(s)",
        "  00-foundational-blocking-prerequisites.md",
        "  01-t005-test-album-creation-in-tests.md  [US1]  (at once with its group phase-3-1)",
        "  02-t006-create-the-album-model-in.md  [US1]  (at once with its group phase-3-1)",
        "  03-t007-implement-add-photo-in-src.md  [US1]",
        "  04-user-story-2-reorder-albums-priority.md  [US2]",
        "  (done, left out: Phase 1: Setup (Shared Infrastructure))",
    ]
    refused = spec("validate", str(DATA / "speckit" / "001-photo-albums"), "--max-parallel-steps", "9")
    assert refused.returncode == 2
    assert "'9': a whole number from 1 to 8" in refused.stderr


def test_problems_exit_1_with_file_and_line_and_usage_errors_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "specs" / "002-template"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "speckit" / "tasks-template-phases.md", folder / "tasks.md")
    checked = spec("validate", str(folder))
    assert checked.returncode == 1
    assert "specs/002-template/tasks.md:67: task id: TXXX is the template's placeholder" in checked.stderr
    assert "specs/002-template/spec.md:0: file: missing: run /speckit.specify" in checked.stderr

    assert spec("validate", str(tmp_path / "nowhere")).returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    neither = spec("validate", str(empty))
    assert neither.returncode == 2
    assert "neither a spec-kit feature folder" in neither.stderr

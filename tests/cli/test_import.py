"""``protocol import`` as a process: a spec-kit feature folder and an OpenSpec change become protocols with
their steps; a spec with problems exits 2 with each problem on stderr, and nothing is created."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.api.conftest import System
from tests.api.helpers import create_project
from tests.cli.support import cli

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


async def test_spec_folders_import_as_protocols_and_problems_are_shown(
    system: System, tmp_path: Path
) -> None:
    async with system.admin() as admin:
        await create_project(admin, "demo")
    feature = await cli(
        system,
        tmp_path,
        "protocol",
        "import",
        "demo",
        str(DATA / "speckit" / "001-photo-albums"),
        "-o",
        "json",
    )
    assert feature.code == 0, feature.stderr
    run = feature.json()
    assert (run["task_name"], run["status"]) == ("Photo albums", "pending")
    assert run["description"] == "Imported from spec-kit specs/001-photo-albums."

    change = await cli(
        system, tmp_path, "protocol", "import", "demo", str(DATA / "openspec" / "add-amp-support"),
        "--task-name", "Amp support", "--field", "protocol_name",
    )  # fmt: skip
    assert change.code == 0, change.stderr
    assert change.stdout.strip() == "0002-amp-support"

    broken = tmp_path / "specs" / "003-broken"
    broken.mkdir(parents=True)
    shutil.copy(DATA / "speckit" / "tasks-template-phases.md", broken / "tasks.md")
    refused = await cli(system, tmp_path, "protocol", "import", "demo", str(broken))
    assert refused.code == 2
    assert "specs/003-broken/tasks.md:67: task id: TXXX is the template's placeholder" in refused.stderr
    listed = await cli(system, tmp_path, "protocol", "list", "demo", "-o", "name")
    assert len(listed.stdout.split()) == 2  # nothing created for the refused one


async def test_codemachine_folders_import_as_protocols(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        await create_project(admin, "cm")
    tracking = tmp_path / "template.json"
    tracking.write_text('{"completedSteps": [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 12]}')
    package = await cli(
        system, tmp_path, "protocol", "import", "cm", str(DATA / "codemachine" / "codemachine-one"),
        "--workflow", "codemachine-one", "--tracking", str(tracking), "-o", "json",
    )  # fmt: skip
    assert package.code == 0, package.stderr
    run = package.json()
    assert run["task_name"] == "CodeMachine-One Workflow"
    assert run["description"] == (
        "Imported from CodeMachine package codemachine-one: CodeMachine-One Workflow."
    )
    workspace = tmp_path / "project"
    shutil.copytree(DATA / "codemachine" / "first-version", workspace)
    (workspace / ".codemachine" / "memory").mkdir()
    (workspace / ".codemachine" / "memory" / "directive.json").write_text("{not sent")
    first = await cli(system, tmp_path, "protocol", "import", "cm", str(workspace), "--field", "task_name")
    assert first.code == 0, first.stderr
    assert first.stdout.strip() == "spec-to-code"
    (workspace / ".codemachine" / "config" / "modules.js").write_text(
        "[{'id': 'x', 'behavior': open('/etc/passwd')}]"
    )
    refused = await cli(system, tmp_path, "protocol", "import", "cm", str(workspace))
    assert refused.code == 2
    assert (
        ".codemachine/config/modules.js:1: value: open('/etc/passwd') is not data (JSON or a literal only: "
        "nothing is run)" in refused.stderr
    )

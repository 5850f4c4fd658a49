"""``deksdenflow spec`` against the API, as a process: ``spec validate --server`` with the exit codes of
the local check (0 valid, 1 problems, 2 usage), ``spec audit`` (admin) and ``spec show``, and the findings
on ``protocol get``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd

from tests.api.conftest import System
from tests.api.helpers import (
    FINDING,
    POLICY_PLAN,
    as_worker,
    audited_on_start,
    create_project,
    create_protocol,
    planned_under_older_rules,
)
from tests.cli.support import cli

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


async def test_spec_validate_on_the_server_and_the_audit(system: System, tmp_path: Path) -> None:
    feature = await cli(
        system, tmp_path, "spec", "validate", "--server", str(DATA / "speckit" / "001-photo-albums")
    )
    assert feature.code == 0, feature.stderr
    assert feature.stdout.splitlines()[0] == "speckit: Photo albums — 3 step(s)"
    assert "  01-user-story-1-group-photos-into.md  [US1]" in feature.stdout

    at_once = await cli(
        system,
        tmp_path,
        "spec",
        "validate",
        "--server",
        "--max-parallel-steps",
        "2",
        str(DATA / "speckit" / "001-photo-albums"),
        "-o",
        "json",
    )
    assert at_once.code == 0, at_once.stderr
    groups = [(s["name"], s["parallel_group"]) for s in json.loads(at_once.stdout)["steps"]]
    assert groups[1:3] == [
        ("01-t005-test-album-creation-in-tests.md", "phase-3-1"),
        ("02-t006-create-the-album-model-in.md", "phase-3-1"),
    ]
    assert [g for _, g in groups].count(None) == 3

    broken = tmp_path / "specs" / "002-template"
    broken.mkdir(parents=True)
    shutil.copy(DATA / "speckit" / "tasks-template-phases.md", broken / "tasks.md")
    refused = await cli(system, tmp_path, "spec", "validate", "--server", str(broken))
    assert refused.code == 1
    assert "specs/002-template/tasks.md:67: task id: TXXX is the template's placeholder" in refused.stderr

    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps({"steps": [{"index": 0, "name": "00-build.md", "step_typ": "STEP_TYPE_WORK"}]})
    )
    misspelt = await cli(system, tmp_path, "spec", "validate", "--server", str(plan))
    assert misspelt.code == 2  # the API's 422
    assert "step_typ" in misspelt.stderr

    await audited_on_start(system)
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, _ = await planned_under_older_rules(system, admin, project["id"], "Old plan")
    audit = await cli(system, tmp_path, "spec", "audit")
    assert audit.code == 0, audit.stderr
    assert audit.stdout.splitlines() == [
        "spec rules v1: 1 run(s) checked, 1 with new findings recorded",
        f"  0001-old-plan ({run_id}) [recorded]: {FINDING}",
    ]
    shown = await cli(system, tmp_path, "spec", "show", "demo/0001-old-plan")
    assert shown.code == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"{run_id}: spec 0123456789ab — invalid"
    assert "  latest audit (rules v1, " in shown.stdout
    findings = await cli(
        system, tmp_path, "protocol", "get", "demo/0001-old-plan", "--field", "spec_findings"
    )
    assert json.loads(findings.stdout) == [FINDING]

    async with system.admin() as admin:
        run = await create_protocol(admin, project["id"], "With policies")
        assert (await admin.post(f"/protocols/{run['id']}/actions/start")).status_code == 200
    await as_worker(system.repo, run["id"], cmd.RecordPlanningCompleted(attempt=1, steps=POLICY_PLAN))
    policies = await cli(system, tmp_path, "spec", "show", "demo/0002-with-policies")
    assert policies.code == 0, policies.stderr
    lines = policies.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if " 2 02-views.md " in line)
    assert lines[at + 1 : at + 3] == ["       US1, US2", "       runs at once with its group phase-3-1"]
    assert lines[-3:] == [
        "       loop back to 01-models.md on failure, at most 3 times (not running 02-views.md again)",
        "       trigger qa-agent when the step completes; a chain of triggers at most 3 deep",
        "       checkpoint: Look at the albums page",
    ]

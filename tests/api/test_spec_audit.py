"""Specs checked through the API without creating anything (``POST /specs/validate``), a run's stored plan
as ``GET /protocols/{id}/spec`` shows it, and the spec audit: by an admin (``POST /admin/spec-audit``,
findings recorded once as events, the run held in planned) and by an API process that starts with newer
spec rules than the last audit's."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import cast

import pytest
from deksdenflow_api import spec_audit
from deksdenflow_api.app import create_app
from deksdenflow_api.context import ApiContext
from deksdenflow_core.aggregates import PROTOCOL_RUN
from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.assets import prompt_text, version_of
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION
from deksdenflow_core.settings import ApiSettings, DatabaseSettings
from pydantic import SecretStr

from tests.api.conftest import ADMIN_TOKEN, System
from tests.api.helpers import (
    FINDING,
    audited_on_start,
    create_project,
    planned,
    planned_under_older_rules,
    spec_audit_marker,
)
from tests.support import eventually

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


def folder(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*.md"))}


async def test_specs_are_checked_without_creating_anything(system: System) -> None:
    before = await system.store.stream_last_seq()
    async with system.admin() as admin:
        steps = [
            {"index": 0, "name": "00-setup.md", "step_type": "STEP_TYPE_SETUP"},
            {
                "index": 1,
                "name": "01-build.md",
                "step_type": "STEP_TYPE_WORK",
                "labels": ["US1"],
                "fallbacks": ["claude-code:sonnet"],
                "policies": {"checkpoint": {"reason": "look at the build"}},
            },
        ]
        sound = (await admin.post("/specs/validate", json={"kind": "plan", "steps": steps})).json()
        assert (sound["valid"], sound["problems"], len(sound["spec_hash"])) == (True, [], 12)
        assert sound["steps"][1] | {"policies": None} == {
            "index": 1, "name": "01-build.md", "step_type": "work", "engine_id": None, "model": None,
            "qa_policy": None, "labels": ["US1"], "fallbacks": ["claude-code:sonnet"], "critical": False,
            "policies": None, "parallel_group": None,
        }  # fmt: skip
        assert sound["policies"]["01-build.md"]["checkpoint"]["reason"] == "look at the build"

        broken = [
            {"index": 0, "name": "plan.md", "step_type": "STEP_TYPE_WORK"},
            {"index": 2, "name": "02-x.md"},
        ]
        refused = (await admin.post("/specs/validate", json={"kind": "plan", "steps": broken})).json()
        assert (refused["valid"], refused["spec_hash"]) == (False, None)
        name = "'plan.md' is not a step file name like '01-build.md'"
        assert {"file": "plan.md", "line": 0, "field": "steps[0]", "message": name} in refused["problems"]
        assert {
            "file": "02-x.md",
            "line": 0,
            "field": "steps[2].step_type",
            "message": "step_type is required",
        } in (refused["problems"])

        looping = [
            steps[0],
            {**steps[1], "policies": {"loop": {"back_to": "02-later.md", "max_iterations": 2}}},
        ]
        loop = (await admin.post("/specs/validate", json={"kind": "plan", "steps": looping})).json()
        assert [(p["file"], p["field"]) for p in loop["problems"]] == [
            ("01-build.md", "steps[1].policies.loop.back_to")
        ]

        feature = DATA / "speckit" / "001-photo-albums"
        imported = await admin.post(
            "/specs/validate", json={"kind": "speckit", "name": feature.name, "files": folder(feature)}
        )
        body = imported.json()
        assert (body["valid"], body["kind"], body["title"], len(body["steps"])) == (
            True,
            "speckit",
            "Photo albums",
            3,
        )
        assert body["steps"][1]["labels"] == ["US1"]
        files = {"tasks.md": (DATA / "speckit" / "tasks-template-phases.md").read_text()}
        template = await admin.post(
            "/specs/validate", json={"kind": "speckit", "name": "002-t", "files": files}
        )
        assert {"file": "specs/002-t/tasks.md", "line": 67, "field": "task id",
                "message": "TXXX is the template's placeholder"} in template.json()["problems"]  # fmt: skip

        workspace = DATA / "codemachine" / "first-version"
        files = {str(p.relative_to(workspace)): p.read_text() for p in workspace.rglob("*") if p.is_file()}
        cm = (await admin.post("/specs/validate", json={"kind": "codemachine", "files": files})).json()
        assert (cm["valid"], cm["kind"], [s["name"] for s in cm["steps"]]) == (
            True,
            "CodeMachine workspace",
            ["00-plan.md", "01-build.md", "02-review.md"],
        )
        assert cm["policies"]["01-build.md"]["loop"]["back_to"] == "00-plan.md"  # the step's loop policy

        # Bad input: 422 naming what is wrong.
        unknown = await admin.post("/specs/validate", json={"kind": "codex", "steps": []})
        assert unknown.status_code == 422
        misspelt = await admin.post(
            "/specs/validate", json={"kind": "plan", "steps": [{"index": 0, "nmae": "x"}]}
        )
        assert misspelt.status_code == 422
        assert ["body", "plan", "steps", 0, "nmae"] in [e["loc"] for e in misspelt.json()["errors"]]
    assert await system.store.stream_last_seq() == before  # nothing was created


async def test_the_audit_records_findings_once_holds_the_run_and_runs_when_a_process_starts(
    system: System,
) -> None:
    await audited_on_start(system)  # this system's own (no run yet): before the test's runs
    async with system.admin() as admin:
        project = await create_project(admin)
        sound_id, _, _ = await planned(admin, system.repo, project["id"], steps=2)
        old_id, seq = await planned_under_older_rules(system, admin, project["id"], "Old plan")

        spec = (
            await admin.get(f"/protocols/{old_id}/spec", headers={"X-Min-Event-Sequence": str(seq)})
        ).json()
        assert (spec["validation_status"], spec["spec_hash"], spec["audit"]) == (
            "invalid",
            "0123456789ab",
            None,
        )
        assert spec["problems"] == [{"file": "plan", "line": 0, "field": "steps", "message": FINDING}]
        assert (spec["steps"][0]["labels"], spec["steps"][0]["step_run_id"]) == (["US1"], f"{old_id}-0")
        assert [(p["name"], p["version"], p["used"]) for p in spec["steps"][1]["prompts"]] == [
            ("exec", version_of(prompt_text("exec")), False),
            ("qa", version_of(prompt_text("qa")), False),
        ]
        sound = (await admin.get(f"/protocols/{sound_id}/spec")).json()
        assert (sound["validation_status"], sound["problems"], sound["source"]) == ("valid", [], None)

        first = await admin.post("/admin/spec-audit")
        assert first.status_code == 200, first.text
        assert first.json() | {"runs": None} == {
            "rules_version": SPEC_RULES_VERSION, "runs_checked": 2, "recorded": 1, "runs": None
        }  # fmt: skip
        assert first.json()["runs"] == [
            {
                "protocol_run_id": old_id,
                "protocol_name": "0002-old-plan",
                "problems": [FINDING],
                "recorded": True,
            }
        ]
        again = await admin.post("/admin/spec-audit")
        assert (again.json()["recorded"], again.json()["runs"][0]["recorded"]) == (0, False)  # a no-op

        read = {"X-Min-Event-Sequence": again.headers["X-Event-Sequence"]}
        events = (await admin.get(f"/protocols/{old_id}/events", headers=read)).json()["data"]
        audits = [e["payload"] for e in events if e["type"] == "protocol_run.spec_audited"]
        assert audits == [
            {"rules_version": SPEC_RULES_VERSION, "problems": [FINDING], "spec_hash": "0123456789ab"}
        ]
        sound_events = (await admin.get(f"/protocols/{sound_id}/events")).json()["data"]
        assert "protocol_run.spec_audited" not in [e["type"] for e in sound_events]
        run = (await admin.get(f"/protocols/{old_id}")).json()
        assert (run["spec_findings"], run["spec_rules_version"], run["waiting_for"]) == (
            [FINDING],
            SPEC_RULES_VERSION,
            "spec",
        )
        assert (await admin.get(f"/protocols/{old_id}/spec")).json()["audit"]["problems"] == [FINDING]

        held = await admin.post(f"/protocols/{old_id}/actions/run_next_step")
        assert held.status_code == 409
        assert FINDING in held.json()["message"]
        async with system.client(**{"X-Project-Token": project["project_token"]}) as member:
            assert (await member.post("/admin/spec-audit")).status_code == 403

        # A later run accepted under the older rules, and a deployment whose last audit used older rules:
        # another API process starting audits again, by itself.
        late_id, _ = await planned_under_older_rules(system, admin, project["id"], "Late plan")
    await (await spec_audit_marker(system)).put(
        "last", json.dumps({"rules_version": SPEC_RULES_VERSION - 1}).encode()
    )
    replica = create_app(
        ApiSettings(api_token=SecretStr(ADMIN_TOKEN)),
        event_store=system.event_store,
        database=DatabaseSettings(db_url=system.db_url),
    )

    async def late_run_audited() -> bool:
        return (await system.repo.load(PROTOCOL_RUN, late_id)).state.spec_findings == (FINDING,)

    async with replica.router.lifespan_context(replica):
        await eventually(late_run_audited, what="the starting process to audit the late run")
        await audited_on_start(system)


async def test_the_start_up_audit_stops_when_its_process_stops_even_if_a_library_swallowed_the_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.11's wait_for (in nats-py and asyncpg) can return or raise its own error instead of
    # CancelledError when a cancel meets a result; CI saw the audit then retry for ever and the API never
    # stop on SIGTERM. Here the attempt swallows the cancel and fails as the missing read model made it.
    attempts = 0

    async def swallowing_attempt(_ctx: object) -> None:
        nonlocal attempts
        attempts += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        raise RuntimeError('relation "readmodel.protocol_runs" does not exist')

    monkeypatch.setattr(spec_audit, "audit_if_behind", swallowing_attempt)
    task = asyncio.create_task(spec_audit.audit_on_start(cast(ApiContext, None)))
    await eventually(lambda: attempts == 1)
    task.cancel()
    try:
        await asyncio.wait({task}, timeout=30)
        assert task.cancelled(), f"the audit did not stop: {attempts} attempts"
        assert attempts == 1
    finally:
        await cancel_and_wait(task, 5)

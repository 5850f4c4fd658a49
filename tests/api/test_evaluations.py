"""Evaluations over the API: the runner records one (admin only) and anyone reads it back from the read
model like a run — a project token only the evaluations that ran on its project, with its runs only — and
a re-score adds scores without losing the first ones; ``deksdenflow eval list|show`` print them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.conftest import System
from tests.api.helpers import create_project
from tests.cli.support import cli

VARIANTS = [
    {
        "id": "base",
        "engine_id": "codex",
        "model": "gpt-5.5",
        "prompt_versions": {"exec": "abc"},
        "label": "b",
    },
    {"id": "worse", "engine_id": "codex", "model": "gpt-5.5", "expect_regression": True},
]


def score(variant: str, project_id: str, resolved: bool) -> dict[str, Any]:
    return {
        "task_id": "t1",
        "variant_id": variant,
        "project_id": project_id,
        "protocol_run_id": f"run-{variant}",
        "resolved": resolved,
        "f2p_passed": int(resolved),
        "f2p_total": 1,
        "p2p_passed": 1,
        "p2p_total": 1,
        "qa_verdict": "PASS",
        "qa_label": "PASS",
        "qa_agrees": "yes" if resolved else "no",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_micro_usd": 5,
        "turns": 3,
        "guardrail_violations": 0,
    }


def conclusion(resolved_worse: bool) -> dict[str, Any]:
    return {
        "summaries": [
            {
                "variant_id": "worse",
                "tasks": 1,
                "resolved": int(resolved_worse),
                "qa_verdicts": 1,
                "qa_agreements": int(resolved_worse),
                "input_tokens": 100,
                "output_tokens": 10,
                "cost_micro_usd": 5,
                "turns": 3,
                "guardrail_violations": 0,
                "regressions": [] if resolved_worse else ["resolved 0% < 100%"],
            }
        ],
        "passed": True,
    }


async def test_an_evaluation_is_recorded_and_read_back_scoped_to_its_projects(
    system: System, tmp_path: Path
) -> None:
    async with system.admin() as admin:
        mine = await create_project(admin, "mine")
        other = await create_project(admin, "other")
        body = {
            "mode": "replay",
            "baseline": "base",
            "task_ids": ["t1"],
            "variants": VARIANTS,
            "scorer": "s/1",
        }
        started = await admin.post("/evaluations", json=body)
        assert started.status_code == 201, started.text
        eid = started.json()["id"]
        for s in (score("base", mine["id"], True), score("worse", other["id"], False)):
            assert (await admin.post(f"/evaluations/{eid}/scores", json=s)).status_code == 200
        wrong = await admin.post(
            f"/evaluations/{eid}/scores", json={**score("base", mine["id"], True), "task_id": "t9"}
        )
        assert wrong.status_code == 422, wrong.text
        assert (await admin.post(f"/evaluations/{eid}/complete", json=conclusion(False))).status_code == 200
        rescored = await admin.post(
            f"/evaluations/{eid}/rescores",
            json={
                **conclusion(True),
                "scorer": "s/2",
                "scores": [score("base", mine["id"], True), score("worse", other["id"], True)],
            },
        )
        assert rescored.status_code == 200, rescored.text
        seq = str(rescored.json()["event_sequence"])

        got = (await admin.get(f"/evaluations/{eid}", headers={"X-Min-Event-Sequence": seq})).json()
        assert (got["status"], got["rescores"], got["scorer"], got["passed"]) == ("completed", 1, "s/2", True)
        assert got["variants"][0]["prompt_versions"] == ["exec@abc"]
        assert [(s["variant_id"], s["resolved"]) for s in got["scores"]] == [("base", True), ("worse", True)]
        listed = (await admin.get("/evaluations")).json()
        assert [e["id"] for e in listed["data"]] == [eid]

    async with system.client(**{"X-Project-Token": mine["project_token"]}) as project:
        seen = (await project.get(f"/evaluations/{eid}")).json()
        assert [s["variant_id"] for s in seen["scores"]] == ["base"]  # the other project's run is not shown
        assert (await project.post("/evaluations", json=body)).status_code == 403
    async with system.admin() as admin:
        third = await create_project(admin, "third")
    async with system.client(**{"X-Project-Token": third["project_token"]}) as project:
        assert (await project.get("/evaluations")).json()["count"] == 0
        assert (await project.get(f"/evaluations/{eid}")).status_code == 404

    listed_cli = await cli(system, tmp_path, "eval", "list")
    assert listed_cli.code == 0, listed_cli.stderr
    assert eid in listed_cli.stdout
    assert "base,worse" in listed_cli.stdout
    shown = await cli(system, tmp_path, "eval", "show", eid)
    assert shown.code == 0, shown.stderr
    assert "worse: resolved 1/1, QA agrees 1/1, no regression" in shown.stdout
    assert f"evaluation {eid} (replay, baseline base): passed" in shown.stdout

"""The CLI says why a project or run is stuck (the ``why`` column: status reason, and a retry with when
its next try comes), sets engines and run policies as options, and sums usage and cost."""

from __future__ import annotations

import uuid
from pathlib import Path

from deksdenflow_core.aggregates import PROJECT
from deksdenflow_core.assets import prompt_text, version_of
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import JobRetry, Phase, TokenUsage
from deksdenflow_core.eventstore import AppendMeta

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, create_protocol, planned
from tests.cli.support import cli


async def settled(system: System, seq: int) -> None:
    """The read model has ``seq`` (what a test appended itself, past the API)."""
    async with system.admin() as admin:
        response = await admin.get("/events", params={"limit": 1}, headers={"X-Min-Event-Sequence": str(seq)})
        assert response.status_code == 200, response.text


def meta(aggregate_id: str) -> AppendMeta:
    return AppendMeta(
        source="tests", actor="worker:test", correlation_id=aggregate_id, causation_id=uuid.uuid4().hex
    )


async def test_a_retrying_project_says_why_in_its_table_and_field(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "stuck")
    await system.repo.execute(PROJECT, project["id"], pcmd.RequestOnboarding(), meta(project["id"]))
    notice = JobRetry(
        job="project.onboarding_requested",
        request_event_id="e1",
        delivery=2,
        max_deliveries=6,
        error="git ls-remote: Connection refused",
        failed_at_ms=1_000,
        next_try_at_ms=5_000,  # long past: the next try is due
    )
    seq = (
        await system.repo.execute(
            PROJECT, project["id"], pcmd.RecordProjectJobRetry(retry=notice), meta(project["id"])
        )
    ).appended.last_seq
    await settled(system, seq)
    got = await cli(system, tmp_path, "project", "get", "stuck")
    assert got.code == 0, got.stderr
    why = next(line for line in got.stdout.splitlines() if line.startswith("why"))
    assert "onboarding retrying (try 2 of 6 failed: git ls-remote: Connection refused)" in why
    assert "next try due since" in why
    field = await cli(system, tmp_path, "project", "get", "stuck", "--field", "why")
    assert field.stdout.startswith("onboarding retrying (try 2 of 6 failed")
    listed = await cli(system, tmp_path, "project", "list")
    assert "WHY" in listed.stdout.splitlines()[0]


async def test_engines_and_a_run_policy_are_options_of_create(system: System, tmp_path: Path) -> None:
    created = await cli(
        system, tmp_path, "project", "create", "demo", "--git-url", "file:///repos/demo.git", "--no-onboard",
        "--engine", "scripted", "--engine-for", "qa=codex", "--model", "qa=o4-mini",
        "--mode", "autopilot", "--plan-approval", "required", "--merge", "when_green",
        "--required-check", "test", "--reviewer", "alice", "-o", "json",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    project = created.json()
    engines = project["default_engines"]
    assert (engines["planning"], engines["exec"], engines["qa"]) == ("scripted", "scripted", "codex")
    assert project["default_models"]["qa"] == "o4-mini"
    policy = project["run_policy"]
    assert (policy["mode"], policy["plan_approval"]) == ("autopilot", "required")
    assert policy["merge"]["mode"] == "when_green"
    assert policy["merge"]["required_checks"] == ["test"]
    assert policy["pr"]["reviewers"] == ["alice"]

    bad = await cli(
        system, tmp_path, "project", "create", "x", "--git-url", "file:///x.git", "--model", "plan=x"
    )
    assert bad.code == 2
    assert "unknown phase 'plan'" in bad.stderr

    manual = await cli(
        system, tmp_path, "protocol", "create", "demo", "By hand", "--mode", "manual", "--start", "-o", "json"
    )
    assert manual.code == 0, manual.stderr
    run = manual.json()
    assert run["run_policy"]["mode"] == "manual"
    assert run["status"] == "planning"

    replaced = await cli(system, tmp_path, "project", "run-policy", "set", "demo", "--pr-open", "when_done")
    assert replaced.code == 0, replaced.stderr
    policy = (await cli(system, tmp_path, "project", "get", "demo", "-o", "json")).json()["run_policy"]
    assert policy["pr"]["open"] == "when_done"
    assert policy["merge"]["mode"] == "never"  # a whole policy: what is not given takes the defaults


async def test_usage_is_summed_by_model_with_a_total(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id = (await create_protocol(admin, project["id"]))["id"]
    seq = 0
    for call_id, phase, model, cost in (
        ("c1", Phase.EXEC, "gpt-5", 1_500_000),
        ("c2", Phase.QA, "o4-mini", 20),
    ):
        usage = cmd.RecordUsage(
            call_id=call_id, phase=phase, engine_id="codex", model=model,
            usage=TokenUsage(input_tokens=1000, output_tokens=10), cost_micro_usd=cost,
        )  # fmt: skip
        seq = await as_worker(system.repo, run_id, usage)
    await settled(system, seq)
    table = await cli(system, tmp_path, "usage", "--project", "demo")
    assert table.code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["KEY", "CALLS", "INPUT"]
    assert [r.split()[0] for r in rows] == ["gpt-5", "o4-mini", "total"]
    assert rows[-1].split()[-1] == "1.50002"
    as_json = (await cli(system, tmp_path, "usage", "--by", "phase", "-o", "json")).json()
    assert {r["key"]: r["calls"] for r in as_json["data"]} == {"exec": 1, "qa": 1}
    assert as_json["total"]["cost_micro_usd"] == 1_500_020


async def test_prompts_list_each_version_with_its_figures(system: System, tmp_path: Path) -> None:
    decompose = version_of(prompt_text("decompose"))
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        _, _, seq = await planned(
            admin, system.repo, project["id"], decompose_prompt_version=decompose, steps_refined=2,
            steps_kept_as_planned=1,
        )  # fmt: skip
    await settled(system, seq)
    table = await cli(system, tmp_path, "prompts")
    assert table.code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "PHASE", "VERSION", "BUILTIN"]
    assert [r.split()[0] for r in rows] == ["planning", "decompose", "exec", "qa", "qa-light"]
    assert all(r.split()[3] == "True" for r in rows)
    assert "steps_refined" in rows[1]
    as_json = (await cli(system, tmp_path, "prompts", "-o", "json")).json()
    assert as_json[0]["versions"][0]["builtin"] is True
    assert as_json[1]["versions"][0]["outcomes"] == {"steps_refined": 2, "steps_kept_as_planned": 1}

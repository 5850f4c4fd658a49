"""Resources and actions through the CLI process: table and JSON outputs, names for ids, and the exit
codes of the API's refusals (409 → 5 with the current status, 404 → 6, bad token → 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api.conftest import System
from tests.api.helpers import create_project, planned
from tests.cli.support import cli


async def test_projects_are_created_listed_and_read_in_every_format(system: System, tmp_path: Path) -> None:
    created = await cli(
        system, tmp_path, "project", "create", "demo", "--git-url", "file:///repos/demo.git", "--no-onboard",
        "-o", "json",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    project = created.json()
    assert project["name"] == "demo"
    assert project["project_token"]

    table, as_json, jsonl, yaml_out, names, field, bare = await asyncio.gather(
        cli(system, tmp_path, "project", "list"),
        cli(system, tmp_path, "project", "list", "-o", "json"),
        cli(system, tmp_path, "project", "list", "-o", "jsonl"),
        cli(system, tmp_path, "project", "get", "demo", "-o", "yaml"),
        cli(system, tmp_path, "project", "list", "-o", "name"),
        cli(system, tmp_path, "project", "get", "demo", "--field", "name", "--field", "base_branch"),
        cli(system, tmp_path, "project", "get", project["id"], "-o", "json", "--field", "git_url"),
    )
    assert table.code == 0, table.stderr
    assert "\x1b[" not in table.stdout, "no colour off a terminal"
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATUS"]
    assert any(row.split()[:2] == [project["id"], "demo"] for row in rows)
    assert [p["id"] for p in as_json.json()] == [project["id"]]
    assert [line.startswith("{") for line in jsonl.stdout.splitlines()] == [True]
    assert f"id: {project['id']}" in yaml_out.stdout
    assert names.stdout.split() == [project["id"]]
    assert field.stdout.split() == ["name", "demo", "base_branch", "main"]
    assert bare.stdout == "file:///repos/demo.git\n"


async def test_a_protocol_is_started_by_name_and_a_second_start_is_a_conflict(
    system: System, tmp_path: Path
) -> None:
    async with system.admin() as admin:
        await create_project(admin, "demo")
    created = await cli(system, tmp_path, "protocol", "create", "demo", "Add login page", "-o", "json")
    assert created.code == 0, created.stderr
    name = created.json()["protocol_name"]

    started = await cli(system, tmp_path, "protocol", "start", f"demo/{name}")
    assert started.code == 0, started.stderr
    assert "start" in started.stdout
    assert "planning" in started.stdout

    again = await cli(system, tmp_path, "protocol", "start", f"demo/{name}")
    assert again.code == 5
    assert again.stdout == ""
    assert "current status: planning" in again.stderr

    listed = await cli(system, tmp_path, "protocol", "list", "demo", "--status", "planning", "-o", "json")
    assert [p["protocol_name"] for p in listed.json()] == [name]


async def test_steps_are_listed_read_and_acted_on_by_index(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, step_ids, _ = await planned(admin, system.repo, project["id"], steps=2)
    steps, one, reports, events = await asyncio.gather(
        cli(system, tmp_path, "step", "list", run_id, "-o", "json"),
        cli(system, tmp_path, "step", "get", f"demo/{run_id}/1", "--field", "id", "-o", "json"),
        cli(system, tmp_path, "step", "qa-reports", step_ids[0], "-o", "json"),
        cli(system, tmp_path, "events", "--protocol", run_id, "-o", "json", "--field", "type"),
    )
    assert [s["id"] for s in steps.json()] == step_ids
    assert one.stdout.strip() == step_ids[1]
    assert reports.code == 0
    assert reports.json() == []
    assert events.stdout.splitlines()[0] == "protocol_run.created"


async def test_refusals_have_their_exit_codes(system: System, tmp_path: Path) -> None:
    missing, unknown_name, bad_token, usage, unreachable = await asyncio.gather(
        cli(system, tmp_path, "protocol", "get", "no-such-run"),
        cli(system, tmp_path, "project", "get", "nobody"),
        cli(system, tmp_path, "project", "list", token="not-the-token"),
        cli(system, tmp_path, "project", "list", "-o", "xml"),
        cli(None, tmp_path, "project", "list", DEKSDENFLOW_API_URL="http://127.0.0.1:9"),
    )
    assert (missing.code, missing.stdout) == (6, "")
    assert "404" in missing.stderr
    assert unknown_name.code == 6
    assert bad_token.code == 4, bad_token.stderr
    assert usage.code == 2
    assert unreachable.code == 7


async def test_the_exit_codes_are_documented(tmp_path: Path) -> None:
    result = await cli(None, tmp_path, "help", "exit-codes")
    assert result.code == 0
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 124, 130):
        assert f" {code}  " in result.stdout

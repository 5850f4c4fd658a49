"""The prompt registry: every prompt with its built-in version, and each version the log has seen with its
calls, tokens, cost and outcomes — a project's own override shows as a version of its own, and two prompts'
outcomes never mix, even on one version."""

from __future__ import annotations

from deksdenflow_core.assets import PROMPT_NAMES, prompt_text, version_of
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import Phase, QaVerdict, TokenUsage

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, planned

OVERRIDE = "0123456789ab"  # a project's own exec prompt
SHARED = "fedcba987654"  # one text a project saved as its own planning and decompose prompts


async def test_prompts_list_every_prompt_and_the_versions_the_log_has_seen(system: System) -> None:
    exec_builtin, qa_builtin = version_of(prompt_text("exec")), version_of(prompt_text("qa"))
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, steps, _ = await planned(
            admin, system.repo, project["id"], steps=2, prompt_version=SHARED,
            decompose_prompt_version=SHARED, steps_refined=1, steps_kept_as_planned=1,
        )  # fmt: skip

        async def usage(call_id: str, phase: Phase, name: str, version: str, cost: int) -> None:
            await as_worker(
                system.repo,
                run_id,
                cmd.RecordUsage(
                    call_id=call_id, phase=phase, engine_id="codex", model="gpt-5",
                    usage=TokenUsage(input_tokens=100, output_tokens=10), cost_micro_usd=cost,
                    prompt_name=name, prompt_version=version,
                ),
            )  # fmt: skip

        await usage("p1", Phase.PLANNING, "planning", SHARED, 30)
        await usage("d1", Phase.DECOMPOSE, "decompose", SHARED, 20)
        await admin.post(f"/steps/{steps[0]}/actions/run")
        await usage("c1", Phase.EXEC, "exec", exec_builtin, 500)
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordStepExecutionCompleted(
                step_run_id=steps[0], commit_sha="a1", prompt_version=exec_builtin
            ),
        )
        await admin.post(f"/steps/{steps[0]}/actions/run_qa")
        await usage("c2", Phase.QA, "qa", qa_builtin, 40)
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordQaVerdict(
                step_run_id=steps[0], qa_attempt=1, verdict=QaVerdict.PASS, prompt_version=qa_builtin
            ),
        )
        await admin.post(f"/steps/{steps[1]}/actions/run")
        await usage("c3", Phase.EXEC, "exec", OVERRIDE, 700)
        seq = await as_worker(
            system.repo,
            run_id,
            cmd.RecordStepExecutionCompleted(step_run_id=steps[1], commit_sha="a2", prompt_version=OVERRIDE),
        )

        body = (await admin.get("/prompts", headers={"X-Min-Event-Sequence": str(seq)})).json()
        assert [p["name"] for p in body["data"]] == list(PROMPT_NAMES)
        prompts = {p["name"]: p for p in body["data"]}
        assert prompts["decompose"]["version"] == version_of(prompt_text("decompose"))
        assert prompts["qa-light"]["phase"] == "qa"

        exec_versions = prompts["exec"]["versions"]
        assert [(v["version"], v["builtin"]) for v in exec_versions] == [
            (exec_builtin, True),
            (OVERRIDE, False),
        ]
        builtin, override = exec_versions
        assert (builtin["calls"], builtin["cost_micro_usd"], builtin["input_tokens"]) == (1, 500, 100)
        assert builtin["outcomes"] == {"executions_completed": 1}
        assert (override["calls"], override["cost_micro_usd"]) == (1, 700)
        assert override["outcomes"] == {"executions_completed": 1}
        assert override["first_used"] is not None

        (qa,) = prompts["qa"]["versions"]
        assert (qa["calls"], qa["outcomes"]) == (1, {"qa_pass": 1})
        unused, own_planning = prompts["planning"]["versions"]
        assert (unused["builtin"], unused["calls"], unused["first_used"]) == (True, 0, None)
        assert (own_planning["version"], own_planning["calls"]) == (SHARED, 1)
        assert own_planning["outcomes"] == {"plans": 1}
        _, own_decompose = prompts["decompose"]["versions"]
        assert (own_decompose["version"], own_decompose["calls"]) == (SHARED, 1)
        assert own_decompose["outcomes"] == {"steps_refined": 1, "steps_kept_as_planned": 1}

        other = await create_project(admin, "other")
    async with system.client(**{"X-Project-Token": other["project_token"]}) as token:
        theirs = {p["name"]: p for p in (await token.get("/prompts")).json()["data"]}
        assert [v["calls"] for v in theirs["exec"]["versions"]] == [0]

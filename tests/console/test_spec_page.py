"""A run's spec page (``/console/runs/{id}/spec``) in Chromium, over the API tests' system with no worker:
the test records plans as a worker would. A plan with a parallel group and every kind of policy, the
prompts of its phases and an import's source; a plan accepted under older spec rules, found by the audit,
reached from the attention board with its problems and planned again from there; a project token kept to
its project's runs; and the policies in words."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from deksdenflow_core.assets import prompt_text, version_of
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION
from deksdenflow_core.specs.policy_words import policy_words
from playwright.async_api import Page, async_playwright, expect

from tests.api.conftest import ADMIN_TOKEN, System
from tests.api.helpers import (
    FINDING,
    POLICY_PLAN,
    as_worker,
    audited_on_start,
    create_project,
    create_protocol,
    planned_under_older_rules,
)
from tests.console.conftest import CHROMIUM, accessible_async

# A busy machine: the event reaches the page through the projector, the feed and a fetch of the fragment.
LIVE_MS = 60_000
FEATURE = Path(__file__).resolve().parents[1] / "specs" / "data" / "speckit" / "001-photo-albums"


@pytest.fixture
async def page(system: System) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(base_url=system.base_url, viewport={"width": 1366, "height": 900})
        yield await context.new_page()
        await browser.close()


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/console/signin")
    await page.get_by_label("Admin token or project token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/attention")


@pytest.mark.slow
async def test_the_spec_page_shows_the_plan_its_policies_and_prompts_to_its_project_only(
    system: System, page: Page
) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "albums")
        other = await create_project(admin, "other")
        run = await create_protocol(admin, project["id"], "Photo albums")
        started = await admin.post(f"/protocols/{run['id']}/actions/start")
        assert started.status_code == 200
        read = {"X-Min-Event-Sequence": started.headers["X-Event-Sequence"]}
        assert (await admin.get(f"/protocols/{run['id']}", headers=read)).json()["status"] == "planning"
        files = {p.name: p.read_text() for p in FEATURE.glob("*.md")}
        imported = await admin.post(
            f"/projects/{project['id']}/protocols/import",
            json={
                "kind": "speckit",
                "name": FEATURE.name,
                "files": files,
                "run_policy": {"max_parallel_steps": 2},
            },
        )
        assert imported.status_code == 201, imported.text
    await sign_in(page, ADMIN_TOKEN)
    await page.goto(f"/console/runs/{run['id']}")
    await page.get_by_role("link", name="Spec", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Spec of {run['protocol_name']}")
    await expect(page.get_by_text("No plan yet.")).to_be_visible()
    # the plan recorded while the page is open: the run's events re-render it, no reload
    await as_worker(system.repo, run["id"], cmd.RecordPlanningCompleted(attempt=1, steps=POLICY_PLAN))
    await expect(page.locator("#spec-steps tbody tr")).to_have_count(4, timeout=LIVE_MS)
    await expect(page.locator("#validation-h .status")).to_have_text("valid")
    await expect(page.locator(".facts")).to_contain_text(
        f"the plan keeps today's spec rules (version {SPEC_RULES_VERSION})"
    )
    await expect(page.locator(".facts")).to_contain_text("planned by an agent")
    await expect(page.locator("#audit")).to_have_text(
        "none recorded (an audit records a run's findings when they change)"
    )
    await expect(page.get_by_role("heading", name=re.compile("Problems"))).to_have_count(0)
    rows = page.locator("#spec-steps tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.nth(1)).to_contain_text("US1")
    await expect(rows.nth(1)).to_contain_text("phase-3-1")
    await expect(rows.nth(1)).to_contain_text("yes: a second QA reviewer")
    await expect(rows.nth(1)).to_contain_text("claude-code:sonnet")
    await expect(rows.nth(2)).to_contain_text("codex / gpt-5")
    await expect(rows.nth(2)).to_contain_text("US1, US2")
    await expect(rows.nth(3).locator("ul.policies li")).to_have_text(
        [
            "loop back to 01-models.md on failure, at most 3 times (not running 02-views.md again)",
            "trigger qa-agent when the step completes; a chain of triggers at most 3 deep",
            "checkpoint: Look at the albums page",
        ]
    )
    await expect(rows.nth(0).locator("td").last).to_have_text("none")
    prompts = page.locator("#spec-prompts tbody tr")
    await expect(prompts).to_have_count(8)  # each step's execution and QA (planning's called none)
    await expect(prompts.filter(has_text="03-review.md")).to_have_count(2)
    light = prompts.filter(has_text="qa-light")
    await expect(light).to_contain_text(version_of(prompt_text("qa-light")))
    await expect(light).to_contain_text("not yet: the built-in version")
    await accessible_async(page, None)

    await page.goto(f"/console/runs/{imported.json()['id']}/spec")
    await expect(page.locator(".facts")).to_contain_text("imported from spec-kit specs/001-photo-albums")
    await expect(page.get_by_text("No plan yet.")).to_be_visible()

    await _kept_to_its_project(page, other["project_token"], run["id"])


async def _kept_to_its_project(page: Page, other_project_token: str, run_id: str) -> None:
    """A project token: its project's runs only; another's is refused, an unknown one is not found."""
    await page.context.clear_cookies()
    await sign_in(page, other_project_token)
    refused = await page.goto(f"/console/runs/{run_id}/spec")
    assert refused is not None
    assert refused.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("(403)")
    unknown = await page.goto("/console/runs/no-such-run/spec")
    assert unknown is not None
    assert unknown.status == 404


@pytest.mark.slow
async def test_a_plan_that_breaks_todays_rules_is_shown_from_the_attention_board_and_planned_again(
    system: System, page: Page
) -> None:
    await audited_on_start(system)  # this system's own (no run yet), before the test's run
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, _ = await planned_under_older_rules(system, admin, project["id"], "Old plan")
        audit = await admin.post("/admin/spec-audit")
        assert audit.json()["recorded"] == 1, audit.text
        read = {"X-Min-Event-Sequence": audit.headers["X-Event-Sequence"]}
        assert (await admin.get(f"/protocols/{run_id}", headers=read)).json()["waiting_for"] == "spec"
    await sign_in(page, ADMIN_TOKEN)
    await page.get_by_role("link", name="demo / 0001-old-plan: plan breaks the spec rules").click()
    await expect(page).to_have_url(re.compile(f"/console/runs/{run_id}/spec$"))
    await expect(page.locator("#validation-h")).to_contain_text("invalid")
    problems = page.locator("#problems tbody tr")
    await expect(problems).to_have_count(1)
    await expect(problems.locator("td")).to_have_text(["plan", "steps", FINDING])
    await expect(page.get_by_text("The run is held: no step runs until it is planned again.")).to_be_visible()
    await expect(page.locator("#audit-problems li")).to_have_text([FINDING])
    await expect(page.locator("#audit")).to_contain_text(f"rules version {SPEC_RULES_VERSION}, at ")
    await expect(page.locator("#spec-steps tbody tr")).to_have_count(2)
    await expect(page.locator("#spec-steps tbody tr").first).to_contain_text("US1")
    await accessible_async(page, "spec")
    await page.get_by_role("button", name="Plan again").click()
    await expect(page.get_by_role("status")).to_contain_text("Start: done, the run is planning.")


def test_policies_read_as_sentences() -> None:
    assert policy_words(None) == []
    assert policy_words(
        {
            "loop": {"back_to": "02-x.md", "on": [], "max_iterations": 1, "skip": []},
            "trigger": {"agent": "qa-agent", "on_directive_only": True, "max_depth": 2, "engine_id": "codex"},
            "checkpoint": {"on_directive_only": True, "reason": ""},
        }
    ) == [
        "loop back to 02-x.md on failure, QA failure or the agent's loop directive, at most once",
        "trigger qa-agent when the agent's directive asks for it, on codex; "
        "a chain of triggers at most 2 deep",
        "checkpoint: stop for a person's decision (only when the agent's directive asks for it)",
    ]
    loop = {
        "back_to": "01-a.md",
        "on": ["LOOP_CAUSE_EXECUTION_FAILED", "LOOP_CAUSE_QA_FAILED"],
        "max_iterations": 2,
    }
    assert policy_words({"loop": loop}) == ["loop back to 01-a.md on failure or QA failure, at most 2 times"]

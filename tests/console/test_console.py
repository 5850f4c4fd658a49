"""The web console as a person uses it, in Chromium, against the whole system (scripted engine, local forge).

The tests share one system and one browser and run in order: a project registered in the first is driven
to a PR in the next. Every screen is checked with axe-core (0 violations) and photographed for the README.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from deksdenflow_runtime.demo import FORGE_REPO
from playwright.sync_api import Page, expect

from tests.console.conftest import Stack, accessible, sign_in

pytestmark = pytest.mark.slow
LONG = 120_000  # ms: a busy machine runs the scripted protocol in seconds, but give it room
shared: dict[str, Any] = {}


def test_sign_in_is_required_and_a_wrong_token_is_refused(page: Page, stack: Stack) -> None:
    page.goto("/console/projects")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    accessible(page, "signin")
    page.get_by_label("Admin token or project token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    sign_in(page, stack.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "df_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/signin"))
    page.goto("/console/projects")
    expect(page).to_have_url(re.compile(r"/console/signin"))


def test_register_onboard_and_answer_a_clarification(page: Page, stack: Stack) -> None:
    sign_in(page, stack.token)
    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Name", exact=True).fill("sample")
    page.get_by_label("Repository (git URL or path)").fill(str(stack.origin))
    page.get_by_label("Forge", exact=True).select_option("github")
    page.get_by_label("Forge repository (owner/name)").fill(FORGE_REPO)
    page.get_by_label("Engine (planning, execution)").select_option("scripted")
    page.get_by_label("Merge").select_option("when_green")
    accessible(page, "projects")
    page.get_by_role("button", name="Register and onboard").click()
    token = page.get_by_label("Project token").input_value()
    assert token.startswith("dfp_")
    accessible(page, "registered")
    shared["token"] = token
    page.get_by_role("link", name="Open the project").click()
    shared["project_url"] = page.url
    # Onboarding is the git worker's: its questions appear on the open page when it is done (pushed).
    question = page.get_by_label("Answer (pr_policy)")
    expect(question).to_be_visible(timeout=LONG)
    question.fill("automatic")
    page.get_by_role("button", name="Send answers").click()
    expect(page.get_by_role("status")).to_contain_text("1 answer(s) recorded")
    expect(page.get_by_text("Answered: automatic")).to_be_visible()
    # What a person is typing survives a live re-render of the region (here: an answer given elsewhere).
    typing = page.get_by_label("Answer (secrets)")
    typing.fill("GITHUB_TOKEN")
    project_id = shared["project_url"].rsplit("/", 1)[1]
    stack.call("POST", f"/projects/{project_id}/clarifications", {"answers": {"required_checks": "test"}})
    expect(page.get_by_text("Answered: test")).to_be_visible()
    expect(typing).to_have_value("GITHUB_TOKEN")
    accessible(page, "project")


def test_create_start_and_watch_a_run_live_to_its_pr(page: Page, stack: Stack) -> None:
    sign_in(page, stack.token)
    page.goto(shared["project_url"])
    page.get_by_label("Task", exact=True).fill("Add a greeting")
    page.get_by_label("Description").fill("greet(name) with a test and docs")
    page.get_by_role("button", name="Create protocol").click()
    expect(page.get_by_role("status")).to_contain_text("Protocol created and started")
    shared["run_url"] = page.url
    # No reload from here: the page follows the run from the event stream.
    expect(page.locator("#pr-link")).to_be_visible(timeout=LONG)
    timeline = page.locator("table.timeline")
    expect(timeline).to_contain_text("execution #1")
    expect(timeline).to_contain_text("scripted")
    run_id = shared["run_url"].rsplit("/", 1)[1].split("?")[0]
    run = stack.api.wait(f"/protocols/{run_id}", lambda r: r["waiting_for"] == "ci", "green CI to merge", 120)
    expect(page.locator(".facts")).to_contain_text("ready for review")
    # CI as the forge reports it: the git worker finds it, the run merges its PR, and the page shows both,
    # still without a reload.
    stack.forge.set_ci(FORGE_REPO, run["branch_head_sha"], state="success", branch=run["protocol_name"])
    facts = page.locator(".facts")
    expect(facts).to_contain_text(re.compile(r"CI\s*success on " + run["branch_head_sha"][:12]), timeout=LONG)
    expect(facts).to_contain_text("merged", timeout=LONG)
    expect(page.locator("#state-h")).to_contain_text("completed")
    accessible(page, "run")


def test_open_a_qa_report_and_a_diff(page: Page, stack: Stack) -> None:
    sign_in(page, stack.token)
    page.goto(shared["run_url"])
    report = page.locator("details.qa").first
    report.locator("summary").click()
    expect(report.locator("article.qa-report").first).to_contain_text("QA attempt 1")
    accessible(page, "run-qa")
    page.get_by_role("button", name="Approve step 1").click()
    expect(page.get_by_role("alert")).to_contain_text("Could not approve the step (409)")
    page.get_by_role("link", name=re.compile("^diff of ")).first.click()
    expect(page.locator("pre.diff").first).to_contain_text("+")
    accessible(page, "diff")
    page.get_by_role("link", name="Everything up to it, against main").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("against main")
    expect(page.locator("section.diff-file").first).to_be_visible()
    page.get_by_role("link", name="0001-add-a-greeting").click()
    page.get_by_role("link", name="Diff against main").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("against main")
    expect(page.locator("section.diff-file").first).to_be_visible()


def test_pause_resume_cancel_and_a_refusal_explained(page: Page, stack: Stack) -> None:
    project = stack.call(
        "POST",
        "/projects",
        {
            "name": "manual",
            "git_url": str(stack.origin),
            "ci_provider": "github",
            "forge_repo": FORGE_REPO,
            "default_engines": dict.fromkeys(("planning", "decompose", "exec", "qa"), "scripted"),
            "run_policy": {"mode": "manual"},
        },
    )
    shared["other_project"] = project["id"]
    sign_in(page, stack.token)
    page.goto(f"/console/projects/{project['id']}")
    page.get_by_label("Task", exact=True).fill("Try the buttons")
    page.get_by_label("Start it now").uncheck()
    page.get_by_role("button", name="Create protocol").click()
    expect(page.get_by_role("status")).to_contain_text("Protocol created.")
    page.get_by_role("button", name="Resume").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Could not resume (409)")
    expect(alert).to_contain_text("only a paused run can be resumed")
    expect(alert).to_contain_text("The run is pending. Start it, or cancel it.")
    accessible(page, "run-409")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("the run is paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("Resume: done")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_contain_text("the run is cancelled")
    expect(page.locator("#state-h")).to_contain_text("cancelled")


def test_a_project_token_sees_only_its_project(page: Page, stack: Stack) -> None:
    sign_in(page, shared["token"])
    page.get_by_role("link", name="Projects").click()
    expect(page.locator("table.grid tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="sample")).to_be_visible()
    expect(page.get_by_role("heading", name="Register a project")).to_have_count(0)
    page.goto(f"/console/projects/{shared['other_project']}")
    expect(page.get_by_role("alert")).to_contain_text("(403)")
    page.goto(f"/console/events?project_id={shared['other_project']}")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.locator("#events-body tr")).to_have_count(0)


def test_attention_shows_a_plan_to_approve_and_it_is_approved_from_there(page: Page, stack: Stack) -> None:
    project = stack.call(
        "POST",
        "/projects",
        {
            "name": "approval",
            "git_url": str(stack.origin),
            "ci_provider": "github",
            "forge_repo": FORGE_REPO,
            "default_engines": dict.fromkeys(("planning", "decompose", "exec", "qa"), "scripted"),
            "run_policy": {"plan_approval": "required"},
        },
    )
    run = stack.call("POST", f"/projects/{project['id']}/protocols", {"task_name": "Add a greeting"})
    stack.api.wait(f"/projects/{project['id']}", lambda p: p["status"] == "ready", "onboarding", 120)
    stack.call("POST", f"/protocols/{run['id']}/actions/start")
    sign_in(page, stack.token)
    item = page.get_by_role("link", name=f"approval / {run['protocol_name']}: plan to approve")
    expect(item).to_be_visible(timeout=LONG)  # pushed to the open board when the plan is recorded
    accessible(page, "attention")
    item.click()
    page.get_by_role("button", name="Approve plan").click()
    expect(page.get_by_role("status")).to_contain_text("Approve plan: done")


def test_events_and_time_travel(page: Page, stack: Stack) -> None:
    sign_in(page, stack.token)
    page.get_by_role("link", name="Events").click()
    expect(page.locator("#events-body tr").first).to_be_visible()
    accessible(page, "events")
    page.get_by_label("Type").fill("project.clarification_answered")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#events-body tr")).to_have_count(2)
    stack.call(
        "POST", f"/projects/{shared['other_project']}/clarifications", {"answers": {"pr_policy": "automatic"}}
    )
    expect(page.locator("#events-body tr")).to_have_count(3)  # appended live, from the stream
    page.get_by_label("Type").fill("protocol_run.created")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#events-body tr")).to_have_count(3)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON lines").click()
    lines = download.value.path().read_text().splitlines()
    assert len(lines) == 3
    assert all('"type":"protocol_run.created"' in line for line in lines)
    page.goto(shared["run_url"])
    page.get_by_role("link", name="Time travel").click()
    page.get_by_role("link", name="First").click()
    expect(page.get_by_role("heading", name=re.compile("State then"))).to_contain_text("pending")
    page.get_by_role("link", name="Next event").click()
    expect(page.get_by_text(re.compile(r"Event 2 of \d+"))).to_be_visible()
    expect(page.get_by_text("nothing committed yet")).to_be_visible()
    page.get_by_role("link", name="Now").click()
    accessible(page, "time-travel")
    page.get_by_role("link", name=re.compile("the run's work up to")).click()
    expect(page.locator("section.diff-file").first).to_be_visible()


def test_api_docs_work_offline_with_authorize(page: Page, stack: Stack) -> None:
    page.goto("/redoc")
    expect(page.get_by_text("deksdenflow").first).to_be_visible()
    page.goto("/docs")
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    page.locator(".auth-container input").first.fill(stack.token)
    page.locator(".auth-container").first.locator("button.authorize").click()
    page.locator(".auth-container").first.locator("button.btn-done").click()
    operation = page.locator("#operations-projects-list_projects_projects_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tbody td.response-col_status").first).to_contain_text(
        "200"
    )


def test_the_stream_resumes_after_last_event_id_with_no_gap_and_no_duplicate(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "df_console")
    everything = stack.call("GET", "/events?limit=500")["data"]
    middle = everything[len(everything) // 2]["position"]
    expected = [e["position"] for e in everything if e["position"] > middle]
    got: list[int] = []
    with (
        httpx.Client(base_url=stack.base, cookies={"df_console": cookie["value"]}, timeout=30) as client,
        client.stream("GET", "/console/stream", headers={"Last-Event-ID": str(middle)}) as stream,
    ):
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("id: "):
                got.append(int(line.removeprefix("id: ")))
            if len(got) == len(expected):
                break
    assert got == expected
    with httpx.Client(base_url=stack.base, timeout=30) as client:
        assert client.get("/console/stream").status_code == 303  # no session: to the sign-in page


def test_forms_need_the_session_csrf_token_and_this_origin(page: Page, stack: Stack) -> None:
    sign_in(page, stack.token)
    page.goto(shared["run_url"])
    csrf = page.locator('input[name="csrf"]').first.input_value()
    cookie = next(c for c in page.context.cookies() if c["name"] == "df_console")
    action = shared["run_url"].split("?")[0].removeprefix(stack.base) + "/actions/pause"
    with httpx.Client(base_url=stack.base, cookies={"df_console": cookie["value"]}, timeout=30) as client:
        assert client.post(action, data={"csrf": "0" * 64}).status_code == 403
        foreign = {"Origin": "http://attacker.example"}
        assert client.post(action, data={"csrf": csrf}, headers=foreign).status_code == 403
        signin = client.post("/console/signin", data={"token": stack.token}, headers=foreign)
        assert signin.status_code == 403
        answer = client.post(action, data={"csrf": csrf}, headers={"Origin": stack.base})
        assert answer.status_code == 303  # accepted: a completed run refuses the pause, explained
        assert "Could+not+pause+%28409%29" in answer.headers["location"]


def test_a_spec_folder_is_imported_from_the_project_page(page: Page, stack: Stack) -> None:
    package = Path(__file__).resolve().parents[1] / "specs" / "data" / "codemachine" / "codemachine-one"
    sign_in(page, stack.token)
    page.goto(shared["project_url"])
    page.get_by_label("Kind").select_option("speckit")  # the wrong kind: refused, every problem shown
    page.get_by_label("Folder").set_input_files(package)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("alert")).to_contain_text("Could not import the spec (422)")
    expect(page.get_by_role("alert")).to_contain_text("specs/codemachine-one/tasks.md:0: file: missing")
    page.get_by_label("Kind").select_option("codemachine")
    page.get_by_label("Folder").set_input_files(package)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Imported 25 file(s) of codemachine-one as a protocol."
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("codemachine-one-workflow")
    page.get_by_role("link", name="Spec", exact=True).click()  # not planned yet: where it comes from
    expect(page.locator(".facts")).to_contain_text("imported from CodeMachine package")
    expect(page.get_by_text("No plan yet.")).to_be_visible()

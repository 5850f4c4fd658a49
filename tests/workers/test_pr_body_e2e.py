"""The PR body kept current end to end: real NATS, PostgreSQL and git, both workers, the scripted engine
and the fake GitHub. An autopilot run of five steps ends with a PR whose body is one checklist, every
step checked, a QA verdict and report link per QA'd step, and the usage spent; every write replaced the
whole body."""

from __future__ import annotations

import itertools
import re

from tests.support import eventually
from tests.workers.conftest import FORGE_REPO, PUBLIC_API_URL, Orchestra
from tests.workers.flow import get, register, wait_for
from tests.workers.scripts import five_step_script
from tests.workers.test_autopilot_e2e import _create_and_start

MARKER = "<!-- deksdenflow:pr-body v1 run="


def _checklist(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("- [")]


def _body(o: Orchestra) -> str:
    prs = o.github.prs(FORGE_REPO)
    return prs[0].body if len(prs) == 1 else ""


async def test_the_pr_body_ends_with_every_step_checked_its_verdicts_and_usage(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(five_step_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))  # QA comes from the policy
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={})  # the defaults: autopilot
        run = await _create_and_start(api, project["id"])
        await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["waiting_for"] == "review",
            what="every step done, the PR waiting for review",
        )

        def final() -> bool:
            body = _body(o)
            return (
                "- Status: running, waiting for review" in body
                and sum(line.startswith("- [x]") for line in _checklist(body)) == 5
            )

        await eventually(final, within=30, what="the PR body showing the run waiting for review")
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]

    body = _body(o)
    lines = _checklist(body)
    assert [line.split("**")[1] for line in lines] == [s["step_name"] for s in steps]
    assert lines[0] == f"- [x] **{steps[0]['step_name']}** — completed · QA skipped"
    for step, line in zip(steps[1:], lines[1:], strict=True):
        assert line == (
            f"- [x] **{step['step_name']}** — completed · QA PASS · "
            f"[QA report]({PUBLIC_API_URL}/steps/{step['id']}/qa)"
        )
    # One checklist, one marker: the body was replaced, never appended to.
    assert body.count("### Steps") == 1
    assert body.count(MARKER) == 1
    assert body.splitlines()[-1] == f"{MARKER}{run['id']} -->"
    usage = re.search(
        r"^- Usage so far: ([\d,]+) tokens in · ([\d,]+) tokens out · \$(\d+\.\d{4})$", body, re.M
    )
    assert usage is not None, body
    assert int(usage[1].replace(",", "")) > 0
    assert int(usage[2].replace(",", "")) > 0

    # Every write was a whole body, each different from the one before, the checked steps only growing.
    writes = [
        r.json()["body"]
        for r in o.github.requests_to("PATCH", "/")
        if "/pulls/" in r.path and "body" in (r.json() or {})
    ]
    assert writes, "the body was written after the PR opened"
    assert writes[-1] == body
    assert all(w.count("### Steps") == 1 and w.count(MARKER) == 1 for w in writes)
    assert all(a != b for a, b in itertools.pairwise(writes))
    checked = [sum(line.startswith("- [x]") for line in _checklist(w)) for w in writes]
    assert checked == sorted(checked)

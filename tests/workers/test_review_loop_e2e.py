"""Reviews end to end: real NATS, PostgreSQL and git, both workers, the scripted engine and the fake GitHub.

An autopilot run reaches its ready PR; a reviewer asks for changes (a signed ``pull_request_review``
webhook, its line comment read back from GitHub); the step reviewed is fixed once with the reviewer's
words, passes QA, and the reviewer gets a reply on the PR that does not come back as a review; a second
request for changes finds the review budget spent and blocks the run.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from deksdenflow_core.domain.review_reply import is_review_reply, replied_to
from deksdenflow_fakes.github import FakeReview

from tests.support import eventually
from tests.webhooks.payloads import load_json
from tests.workers.conftest import FORGE_REPO, Orchestra
from tests.workers.flow import get, register, wait_for
from tests.workers.scripts import five_step_script
from tests.workers.test_autopilot_e2e import _create_and_start, _eventually_ready
from tests.workers.test_ci_loop import _github

LAST_STEP = "04-part-4.md"
REVIEWER = "ann-reviewer"


def _script() -> dict[str, Any]:
    """Five steps; the last one's second execution (attempt 1: the review fix) renames what it wrote."""
    script = five_step_script()
    first = script["exec"][LAST_STEP]
    fix = {
        **first,
        "message": "Rename PART to SESSION",
        "edits": [{"path": "part_4.py", "content": "SESSION = 4\n"}],
    }
    script["exec"][LAST_STEP] = [first, fix]  # by attempt: the first execution is attempt 0
    return script


def _review_delivery(o: Orchestra, run: dict[str, Any], number: int, review: FakeReview, state: str) -> bytes:
    """The ``pull_request_review`` GitHub sends for ``review`` of the run's PR."""
    data = load_json(
        "github_pull_request_review_changes_requested", branch=run["protocol_name"], sha=review.commit_id
    )
    data["pull_request"]["number"] = number
    url = f"{o.github.url}/{FORGE_REPO}/pull/{number}#pullrequestreview-{review.id}"
    data["review"] |= {
        "id": review.id,
        "body": review.body,
        "state": state,
        "commit_id": review.commit_id,
        "html_url": url,
    }
    data["review"]["user"]["login"] = review.user
    return json.dumps(data).encode()


async def _events(api: httpx.AsyncClient, run_id: str, event_type: str) -> list[dict[str, Any]]:
    body = await get(api, f"/events?protocol_run_id={run_id}&type={event_type}&limit=500")
    events: list[dict[str, Any]] = body["data"]
    return events


async def test_changes_requested_are_fixed_once_replied_to_and_a_second_request_blocks_the_run(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={"review_fix_attempts": 1})
        run = await _create_and_start(api, project["id"])
        ready = await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["waiting_for"] == "review",
            within=60,
            what="every step done, the PR waiting for review",
        )
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert [s["status"] for s in steps] == ["completed"] * 5
        last = steps[-1]
        assert last["commit_sha"] == ready["branch_head_sha"]
        pr = await _eventually_ready(o)

        # ann asks for changes on the head commit: a review with a body and a line comment
        review = o.github.add_review(
            FORGE_REPO,
            pr.number,
            REVIEWER,
            "CHANGES_REQUESTED",
            body="PART says nothing: name it after what it holds.",
            comments=[("part_4.py", 1, "call it SESSION")],
        )
        delivery = _review_delivery(o, run, pr.number, review, "changes_requested")
        answer = await _github(o.system, "pull_request_review", delivery)
        assert (answer["status"], answer["protocol_run_id"]) == ("accepted", run["id"])

        # the last step is fixed once, with the reviewer's words, and passes QA
        fixed = await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["waiting_for"] == "review" and r["branch_head_sha"] != ready["branch_head_sha"],
            within=60,
            what="the review fix pushed and passed",
        )
        assert await o.origin.show(run["protocol_name"], "part_4.py") == "SESSION = 4\n"
        requests = await _events(api, run["id"], "protocol_run.step_execution_requested")
        fixes = [e["payload"] for e in requests if e["payload"]["reason"].endswith("REVIEW_FIX")]
        assert len(fixes) == 1
        (fix,) = fixes
        assert fix["step_run_id"] == last["id"]
        assert fix["review"]["body"] == "PART says nothing: name it after what it holds."
        assert [(c["path"], c["line"], c["body"]) for c in fix["review"]["comments"]] == [
            ("part_4.py", 1, "call it SESSION")
        ], "the line comment, read from GitHub"
        assert fix["review"]["fix_attempt"] == 1

        # ann gets one reply on the PR, marked, mentioning her; it is recorded on the run
        def replied() -> bool:
            return any(
                replied_to([c.body], str(review.id)) for c in o.github.pull(FORGE_REPO, pr.number).comments
            )

        await eventually(replied, within=30, what="the reply posted on the PR")
        (reply,) = o.github.pull(FORGE_REPO, pr.number).comments
        assert is_review_reply(reply.body)
        assert f"@{REVIEWER}" in reply.body
        assert "Rename PART to SESSION" in reply.body
        assert fixed["branch_head_sha"][:12] in reply.body
        recorded = await wait_for(
            api,
            f"/events?protocol_run_id={run['id']}&type=protocol_run.review_replied",
            lambda b: len(b["data"]) == 1,
            what="the reply recorded",
        )
        assert recorded["data"][0]["payload"]["review_id"] == str(review.id)

        # the same review delivered again (another delivery id) asks for nothing more
        again = await _github(o.system, "pull_request_review", delivery)
        assert again["status"] == "accepted"
        processed = await wait_for(
            api,
            f"/events?project_id={run['project_id']}&type=webhook.processed&limit=100",
            lambda b: any(e["aggregate_id"] == again["webhook_id"] for e in b["data"]),
            what="the second delivery processed",
        )
        (outcome,) = [e["payload"] for e in processed["data"] if e["aggregate_id"] == again["webhook_id"]]
        assert outcome["outcome"].endswith("NO_EFFECT"), outcome

        # a second request for changes on the fix: the budget (one fix) is spent, the run waits for a person
        second = o.github.add_review(
            FORGE_REPO, pr.number, REVIEWER, "CHANGES_REQUESTED", body="Still wrong."
        )
        await _github(
            o.system, "pull_request_review", _review_delivery(o, run, pr.number, second, "changes_requested")
        )
        blocked = await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked", what="the run blocked"
        )
        assert "review fix attempt" in blocked["blocked_reason"]
        requests = await _events(api, run["id"], "protocol_run.step_execution_requested")
        assert sum(e["payload"]["reason"].endswith("REVIEW_FIX") for e in requests) == 1
        assert len(o.github.pull(FORGE_REPO, pr.number).comments) == 1, "one reply, no loop"

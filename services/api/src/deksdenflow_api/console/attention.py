"""The attention board: what needs a person now, derived from the state the API serves.

Clarification questions left to answer, plans waiting for approval, QA failures, CI failures, blocked
and failed runs, and steps blocked by a budget or spent fix attempts. Each item links where to act.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deksdenflow_api.console.client import ApiClient

_OVER = ("completed", "cancelled")
# What blocks work comes first; questions that block nothing come last.
_ORDER = {
    "plan": 0,
    "blocked": 1,
    "budget": 2,
    "ci": 3,
    "qa": 4,
    "clarification-blocking": 5,
    "clarification": 6,
}


@dataclass(frozen=True)
class Item:
    kind: str
    title: str
    detail: str
    href: str
    project: str


async def collect(api: ApiClient) -> list[Item]:
    items: list[Item] = []
    projects = (await api.get("/projects", limit=500)).body.get("data", [])
    for project in projects:
        name = project["name"]
        unanswered = [q for q in project["questions"] if q.get("key") not in project["answers"]]
        if unanswered:
            blocking = sum(bool(q.get("blocking")) for q in unanswered)
            items.append(
                Item(
                    "clarification-blocking" if blocking else "clarification",
                    f"{name}: {len(unanswered)} question(s) to answer",
                    f"{blocking} blocking (no protocol can start until answered)"
                    if blocking
                    else "none blocking",
                    f"/console/projects/{project['id']}#clarifications",
                    name,
                )
            )
        runs = (await api.get(f"/projects/{project['id']}/protocols", limit=500)).body.get("data", [])
        for run in runs:
            if run["status"] in _OVER:
                continue
            items.extend(await _run_items(api, name, run))
    return sorted(items, key=lambda item: _ORDER.get(item.kind, len(_ORDER)))


async def _run_items(api: ApiClient, project: str, run: dict[str, Any]) -> list[Item]:
    href = f"/console/runs/{run['id']}"
    label = f"{project} / {run['protocol_name']}"
    items = []
    if run["waiting_for"] == "plan_approval":
        items.append(Item("plan", f"{label}: plan to approve", "approve_plan or reject_plan", href, project))
    if run["status"] == "blocked":
        reason = run["blocked_reason"] or "a step needs a person"
        kind = (
            "budget" if "budget" in reason.lower() else "ci" if "ci" in reason.lower().split() else "blocked"
        )
        items.append(Item(kind, f"{label}: blocked", reason, href, project))
    if run["status"] == "failed":
        items.append(
            Item("blocked", f"{label}: planning failed", "start re-plans, cancel gives up", href, project)
        )
    steps = (await api.get(f"/protocols/{run['id']}/steps")).body.get("data", [])
    for step in steps:
        if step["last_verdict"] == "FAIL" and step["status"] != "completed":
            items.append(
                Item("qa", f"{label}: QA failed on {step['step_name']}", step["summary"] or "", href, project)
            )
    ci = (
        await api.get("/events", protocol_run_id=run["id"], type="protocol_run.ci_reported", limit=500)
    ).body
    reports = ci.get("data", []) if isinstance(ci, dict) else []
    if reports:
        last = reports[-1]["payload"]
        status = str(last.get("status", "")).lower()
        if "fail" in status or "error" in status:
            items.append(
                Item("ci", f"{label}: CI failed", f"on {str(last.get('head_sha', ''))[:12]}", href, project)
            )
    return items

"""The attention board: what needs a person now, derived from the state the API serves.

Clarification questions left to answer, projects whose onboarding failed, plans waiting for approval, QA
failures, CI failures, blocked and failed runs, steps blocked by a budget or spent fix attempts, budgets
near their limit (a budget warning on the run) and jobs failing and being retried. Each item links where
to act.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from deksdenflow_api.console.client import Answer

_OVER = ("completed", "cancelled")
# What blocks work comes first; questions that block nothing come last.
_ORDER = {
    "plan": 0,
    "blocked": 1,
    "budget": 2,
    "onboarding": 3,
    "ci": 4,
    "qa": 5,
    "retrying": 6,
    "budget-warning": 7,
    "clarification-blocking": 8,
    "clarification": 9,
}


class Api(Protocol):
    """What the board reads through: the API's GET routes (``ApiClient`` in the console)."""

    async def get(self, path: str, **params: Any) -> Answer: ...


@dataclass(frozen=True)
class Item:
    kind: str
    title: str
    detail: str
    href: str
    project: str


async def collect(api: Api) -> list[Item]:
    items: list[Item] = []
    projects = (await api.get("/projects", limit=500)).body.get("data", [])
    for project in projects:
        name = project["name"]
        if project["status"] == "onboarding_failed":
            items.append(
                Item(
                    "onboarding",
                    f"{name}: onboarding failed",
                    project.get("status_reason") or "onboard it again once the cause is fixed",
                    f"/console/projects/{project['id']}",
                    name,
                )
            )
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


async def _run_items(api: Api, project: str, run: dict[str, Any]) -> list[Item]:
    href = f"/console/runs/{run['id']}"
    label = f"{project} / {run['protocol_name']}"
    items = []
    if run["waiting_for"] == "plan_approval":
        items.append(Item("plan", f"{label}: plan to approve", "approve_plan or reject_plan", href, project))
    if run["waiting_for"] == "spec":
        findings = "; ".join(run["spec_findings"] or [])
        items.append(
            Item(
                "plan",
                f"{label}: plan breaks the spec rules",
                f"{findings} (start re-plans)",
                f"{href}/spec",
                project,
            )
        )
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
        if str(step["last_verdict"] or "").lower() == "fail" and step["status"] != "completed":
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
    retry = run.get("retry")
    if retry:
        job = str(retry.get("job", "")).split(".")[-1].removesuffix("_requested").replace("_", " ")
        detail = (
            f"try {retry.get('delivery')} of {retry.get('max_deliveries')} failed: {retry.get('error', '')}"
        )
        items.append(
            Item(
                "retrying",
                f"{label}: {job} retrying",
                f"{detail}; next try {retry.get('next_try_at')}",
                href,
                project,
            )
        )
    warnings = (
        await api.get(
            "/events", protocol_run_id=run["id"], type="protocol_run.budget_warning_recorded", limit=500
        )
    ).body
    for warning in warnings.get("data", []) if isinstance(warnings, dict) else []:
        w = warning["payload"]
        share = float(w.get("share") or 0)
        what = "tokens" if w.get("kind") == "tokens" else "cost"
        items.append(
            Item(
                "budget-warning",
                f"{label}: {w.get('scope', '')} budget near its limit",
                f"{share:.0%} of its {what} spent ({w.get('spent')} of {w.get('limit')})",
                href,
                project,
            )
        )
    return items

"""Run policies between the API's JSON (plain words) and the contracts (proto enums)."""

from __future__ import annotations

from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    MergeMethod,
    MergeMode,
    MergePolicy,
    PlanApproval,
    PrOpening,
    PrPolicy,
    RunMode,
    RunPolicy,
)
from deksdenflow_core.domain import run_policy

from deksdenflow_api.schemas import RunPolicyIn

_MODE = {"autopilot": RunMode.AUTOPILOT, "manual": RunMode.MANUAL}
_APPROVAL = {"auto": PlanApproval.AUTO, "required": PlanApproval.REQUIRED}
_OPENING = {
    "after_first_push": PrOpening.AFTER_FIRST_PUSH,
    "when_done": PrOpening.WHEN_DONE,
    "never": PrOpening.NEVER,
}
_MERGE = {"never": MergeMode.NEVER, "when_green": MergeMode.WHEN_GREEN}
_METHOD = {"merge": MergeMethod.MERGE, "squash": MergeMethod.SQUASH, "rebase": MergeMethod.REBASE}


def policy_in(body: RunPolicyIn | None) -> RunPolicy | None:
    """The contract for what a client sent (None if it sent nothing); unset stays unset."""
    if body is None:
        return None
    pr, merge = body.pr, body.merge
    return RunPolicy(
        mode=_MODE[body.mode] if body.mode else RunMode.UNSPECIFIED,
        plan_approval=_APPROVAL[body.plan_approval] if body.plan_approval else PlanApproval.UNSPECIFIED,
        qa_after_execution=body.qa_after_execution,
        pr=None
        if pr is None
        else PrPolicy(
            open=_OPENING[pr.open] if pr.open else PrOpening.UNSPECIFIED,
            ready_when_done=pr.ready_when_done,
            reviewers=tuple(pr.reviewers or ()),
        ),
        merge=None
        if merge is None
        else MergePolicy(
            mode=_MERGE[merge.mode] if merge.mode else MergeMode.UNSPECIFIED,
            method=_METHOD[merge.method] if merge.method else MergeMethod.UNSPECIFIED,
            required_checks=tuple(merge.required_checks or ()),
            required_approvals=merge.required_approvals,
        ),
        review_fix_attempts=body.review_fix_attempts,
        max_parallel_steps=body.max_parallel_steps,
    )


def policy_public(policy: RunPolicy | dict[str, Any] | None) -> dict[str, Any]:
    """A resolved policy in plain words (a run or project recorded without one: manual)."""
    if isinstance(policy, dict):
        policy = RunPolicy.model_validate(policy)
    p = run_policy.of_run(policy)
    pr, merge = p.pr or PrPolicy(), p.merge or MergePolicy()
    return {
        "mode": _word(_MODE, p.mode),
        "plan_approval": _word(_APPROVAL, p.plan_approval),
        "qa_after_execution": bool(p.qa_after_execution),
        "pr": {
            "open": _word(_OPENING, pr.open),
            "ready_when_done": bool(pr.ready_when_done),
            "reviewers": list(pr.reviewers),
        },
        "merge": {
            "mode": _word(_MERGE, merge.mode),
            "method": _word(_METHOD, merge.method),
            "required_checks": list(merge.required_checks),
            "required_approvals": merge.required_approvals or 0,
        },
        "review_fix_attempts": p.review_fix_attempts or 0,
        "max_parallel_steps": p.max_parallel_steps or 1,
    }


def _word(words: dict[str, Any], value: object) -> str:
    return next((w for w, v in words.items() if v == value), "unspecified")

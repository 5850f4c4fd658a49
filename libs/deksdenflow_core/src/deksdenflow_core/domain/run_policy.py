"""Run policies: how a protocol run advances, set per project and overridable per protocol.

A policy is *resolved* when it is recorded: every field holds its value, none is left to a default
that could change later. A project's policy is resolved at registration (``resolve(None, given)`` over
``DEFAULT``); a protocol's at creation (``resolve(project's, override)``), and it is written into
``protocol_run.created``, so replaying a run decides exactly as it was decided, whatever the project's
policy or this module's defaults are by then. A run (or project) recorded before policies existed has
none: it is ``MANUAL``, the first version's behaviour.
"""

from __future__ import annotations

import re
from typing import TypeVar

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
from deksdenflow_core.errors import InvalidCommand

# More approvals than this is not a policy a forge would enforce either.
MAX_REQUIRED_APPROVALS = 10
MAX_REVIEWERS = 15
MAX_REQUIRED_CHECKS = 30
# More review fixes than this per step is a loop, not a policy.
MAX_REVIEW_FIX_ATTEMPTS = 10
# Steps of one parallel group executing at once, at most (each is an agent and a worktree).
MAX_PARALLEL_STEPS = 8

# What a project registered without a policy gets: the run goes to a ready-for-review PR by itself.
DEFAULT = RunPolicy(
    mode=RunMode.AUTOPILOT,
    plan_approval=PlanApproval.AUTO,
    qa_after_execution=True,
    pr=PrPolicy(open=PrOpening.AFTER_FIRST_PUSH, ready_when_done=True, reviewers=()),
    merge=MergePolicy(
        mode=MergeMode.NEVER, method=MergeMethod.MERGE, required_checks=(), required_approvals=0
    ),
    review_fix_attempts=2,
)

# Runs and projects recorded before run policies: a client asks for every piece of work.
MANUAL = RunPolicy(
    mode=RunMode.MANUAL,
    plan_approval=PlanApproval.AUTO,
    qa_after_execution=False,
    pr=PrPolicy(open=PrOpening.NEVER, ready_when_done=False, reviewers=()),
    merge=MergePolicy(
        mode=MergeMode.NEVER, method=MergeMethod.MERGE, required_checks=(), required_approvals=0
    ),
    review_fix_attempts=0,
)

# A forge login (GitHub user names, GitLab user names with dots); teams as "org/team".
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$")


def resolve(base: RunPolicy | None, override: RunPolicy | None = None) -> RunPolicy:
    """``override`` over ``base`` (when None: ``MANUAL`` for a manual override, else ``DEFAULT``), every
    field filled, checked.

    In ``override`` an unset field keeps ``base``'s: an UNSPECIFIED enum, an absent optional, an empty
    list. Autopilot always runs QA after an execution (it is the gate that lets the run go on).
    """
    o = override or RunPolicy()
    b = _filled(base or (MANUAL if o.mode is RunMode.MANUAL else DEFAULT))
    opr, bpr = o.pr or PrPolicy(), b.pr or PrPolicy()
    om, bm = o.merge or MergePolicy(), b.merge or MergePolicy()
    mode = _pick(o.mode, b.mode, RunMode.UNSPECIFIED)
    resolved = RunPolicy(
        mode=mode,
        plan_approval=_pick(o.plan_approval, b.plan_approval, PlanApproval.UNSPECIFIED),
        qa_after_execution=True
        if mode is RunMode.AUTOPILOT
        # a manual run of an autopilot base starts from manual's default (QA is asked for by hand)
        else _pick_opt(o.qa_after_execution, b.qa_after_execution if b.mode is mode else False),
        pr=PrPolicy(
            open=_pick(opr.open, bpr.open, PrOpening.UNSPECIFIED),
            ready_when_done=_pick_opt(opr.ready_when_done, bpr.ready_when_done),
            reviewers=opr.reviewers or bpr.reviewers,
        ),
        merge=MergePolicy(
            mode=_pick(om.mode, bm.mode, MergeMode.UNSPECIFIED),
            method=_pick(om.method, bm.method, MergeMethod.UNSPECIFIED),
            required_checks=om.required_checks or bm.required_checks,
            required_approvals=om.required_approvals
            if om.required_approvals is not None
            else bm.required_approvals,
        ),
        review_fix_attempts=_pick_opt(
            o.review_fix_attempts,
            b.review_fix_attempts if b.mode is mode else (2 if mode is RunMode.AUTOPILOT else 0),
        ),
        max_parallel_steps=_pick_opt(o.max_parallel_steps, b.max_parallel_steps),
    )
    check(resolved)
    return resolved


def check(policy: RunPolicy) -> None:
    """Refuse a policy no run could follow (``InvalidCommand`` naming the field)."""
    known = (
        ("run_policy.mode", policy.mode, RunMode),
        ("run_policy.plan_approval", policy.plan_approval, PlanApproval),
        ("run_policy.pr.open", (policy.pr or PrPolicy()).open, PrOpening),
        ("run_policy.merge.mode", (policy.merge or MergePolicy()).mode, MergeMode),
        ("run_policy.merge.method", (policy.merge or MergePolicy()).method, MergeMethod),
    )
    for field, value, enum in known:
        if value not in enum.__members__.values():
            raise InvalidCommand(f"{field} has no value {value!r}", field=field)
    reviewers = (policy.pr or PrPolicy()).reviewers
    if len(reviewers) > MAX_REVIEWERS:
        raise InvalidCommand(f"at most {MAX_REVIEWERS} reviewers", field="run_policy.pr.reviewers")
    bad = [r for r in reviewers if not _LOGIN.match(r)]
    if bad:
        raise InvalidCommand(
            f"not a forge login: {', '.join(repr(r) for r in bad)}", field="run_policy.pr.reviewers"
        )
    merge = policy.merge or MergePolicy()
    if len(merge.required_checks) > MAX_REQUIRED_CHECKS or any(
        not c.strip() or len(c) > 200 for c in merge.required_checks
    ):
        raise InvalidCommand(
            f"required_checks are at most {MAX_REQUIRED_CHECKS} non-blank names",
            field="run_policy.merge.required_checks",
        )
    fixes = policy.review_fix_attempts or 0
    if not 0 <= fixes <= MAX_REVIEW_FIX_ATTEMPTS:
        raise InvalidCommand(
            f"review_fix_attempts must be between 0 and {MAX_REVIEW_FIX_ATTEMPTS}",
            field="run_policy.review_fix_attempts",
        )
    parallel = policy.max_parallel_steps
    if parallel is not None and not 1 <= parallel <= MAX_PARALLEL_STEPS:
        raise InvalidCommand(
            f"max_parallel_steps must be between 1 and {MAX_PARALLEL_STEPS}",
            field="run_policy.max_parallel_steps",
        )
    approvals = merge.required_approvals or 0
    if not 0 <= approvals <= MAX_REQUIRED_APPROVALS:
        raise InvalidCommand(
            f"required_approvals must be between 0 and {MAX_REQUIRED_APPROVALS}",
            field="run_policy.merge.required_approvals",
        )


def of_run(policy: RunPolicy | None) -> RunPolicy:
    """The policy a run follows: the one it recorded, or ``MANUAL`` for a run recorded before policies."""
    return MANUAL if policy is None else policy


def is_autopilot(policy: RunPolicy) -> bool:
    return policy.mode is RunMode.AUTOPILOT


def parallel_steps(policy: RunPolicy | None) -> int:
    """How many steps of one parallel group may execute at once (1 unless the policy says more; only
    autopilot runs several: a person running steps by hand runs one at a time)."""
    if policy is None or not is_autopilot(policy):
        return 1
    return policy.max_parallel_steps or 1


def check_matches(required: str, check_name: str) -> bool:
    """True if a CI line (``"<event>:<name>"``, e.g. ``"check_run:test"``) is the required check
    ``required`` (its name, or the whole line), case-insensitive."""
    wanted = required.strip().casefold()
    line = check_name.casefold()
    return line == wanted or line.partition(":")[2] == wanted


def _filled(policy: RunPolicy) -> RunPolicy:
    """``policy`` with what it leaves unset taken from ``DEFAULT`` (a base may be partial too)."""
    if policy is DEFAULT:
        return DEFAULT
    return resolve(DEFAULT, policy) if _partial(policy) else policy


def _partial(policy: RunPolicy) -> bool:
    pr, merge = policy.pr, policy.merge
    return (
        policy.mode is RunMode.UNSPECIFIED
        or policy.plan_approval is PlanApproval.UNSPECIFIED
        or policy.qa_after_execution is None
        or pr is None
        or pr.open is PrOpening.UNSPECIFIED
        or pr.ready_when_done is None
        or merge is None
        or merge.mode is MergeMode.UNSPECIFIED
        or merge.method is MergeMethod.UNSPECIFIED
        or merge.required_approvals is None
        or policy.review_fix_attempts is None
    )


_E = TypeVar("_E")
_T = TypeVar("_T")


def _pick(value: _E, base: _E, unset: _E) -> _E:
    return base if value == unset else value


def _pick_opt(value: _T | None, base: _T | None) -> _T | None:
    return base if value is None else value

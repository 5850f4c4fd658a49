"""A step's policies in a person's words: loop, trigger and checkpoint (``StepPolicies`` as JSON, as the
API shows them) one sentence each, for the console's spec page and ``deksdenflow spec show``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deksdenflow_core.domain.protocol_run.policies import MAX_TRIGGER_DEPTH

_CAUSES = {
    "LOOP_CAUSE_EXECUTION_FAILED": "failure",
    "LOOP_CAUSE_QA_FAILED": "QA failure",
    "LOOP_CAUSE_DIRECTIVE": "the agent's loop directive",
}


def policy_words(policies: Mapping[str, Any] | None) -> list[str]:
    """A step's loop, trigger and checkpoint policies (``StepPolicies`` as the API shows them), one
    sentence each; [] when it has none."""
    if not policies:
        return []
    words = []
    if loop := policies.get("loop"):
        words.append(_loop(loop))
    if trigger := policies.get("trigger"):
        words.append(_trigger(trigger))
    if checkpoint := policies.get("checkpoint"):
        reason = checkpoint.get("reason") or "stop for a person's decision"
        only = " (only when the agent's directive asks for it)" if checkpoint.get("on_directive_only") else ""
        words.append(f"checkpoint: {reason}{only}")
    return words


def _loop(loop: Mapping[str, Any]) -> str:
    # No cause named: every cause takes the loop (the rules' reading of an empty list).
    causes = [_CAUSES.get(c, c) for c in loop.get("on") or []] or list(_CAUSES.values())
    on = causes[0] if len(causes) == 1 else f"{', '.join(causes[:-1])} or {causes[-1]}"
    times = int(loop.get("max_iterations") or 0)
    at_most = "once" if times == 1 else f"{times} times"
    words = f"loop back to {loop.get('back_to', '')} on {on}, at most {at_most}"
    if loop.get("skip"):
        words += f" (not running {', '.join(loop['skip'])} again)"
    return words


def _trigger(trigger: Mapping[str, Any]) -> str:
    when = (
        "when the agent's directive asks for it"
        if trigger.get("on_directive_only")
        else "when the step completes"
    )
    words = f"trigger {trigger.get('agent', '')} {when}"
    engine = ":".join(x for x in (trigger.get("engine_id"), trigger.get("model")) if x)
    if engine:
        words += f", on {engine}"
    return words + f"; a chain of triggers at most {trigger.get('max_depth') or MAX_TRIGGER_DEPTH} deep"

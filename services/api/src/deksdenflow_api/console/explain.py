"""An API refusal in words: what was refused, why (the domain's own message), and what to do instead."""

from __future__ import annotations

from deksdenflow_api.console.client import Answer

# What a person can do with a run in each status (the run page offers these buttons).
_NEXT_STEPS = {
    "pending": "Start it, or cancel it.",
    "queued": "It waits for a free slot (run limits); cancel it to give up.",
    "planning": "Wait for the plan, pause the run, or cancel it.",
    "planned": "Approve or reject the plan if it waits for approval, run the next step, or pause it.",
    "running": "Wait for the step to finish, pause the run, or cancel it.",
    "paused": "Resume it first, or cancel it.",
    "blocked": "Retry the latest step, approve it, or cancel the run.",
    "failed": "Start it again to plan again, or cancel it.",
    "cancelled": "A cancelled run is over: create a new protocol instead.",
    "completed": "The run is done: nothing more can happen to it.",
}
_STATUS_WORDS = {
    401: "you are not signed in (or your token was revoked)",
    403: "your token does not give access to this",
    404: "it does not exist (or is not visible to your token)",
    409: "it does not apply to the current state",
    422: "what was sent is not valid",
    503: "the system is busy or a part of it is not reachable; try again in a moment",
}


def explain_refusal(what: str, answer: Answer) -> str:
    """``Could not pause (409 Conflict): … the run is paused. Resume it first, or cancel it.``"""
    reason = _STATUS_WORDS.get(answer.status, "the API answered with an error")
    text = f"Could not {what} ({answer.status}): {reason}."
    message = answer.message
    if answer.status == 422 and isinstance(answer.body, dict) and answer.body.get("errors"):
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg', '')}"
            for e in answer.body["errors"][:5]
        )
        message = f"{message} {fields}".strip()
    problems = answer.body.get("problems") if isinstance(answer.body, dict) else None
    if answer.status == 422 and isinstance(problems, list) and len(problems) > 1:
        message = f"{message.rstrip('.')}. All of them: " + "; ".join(str(p) for p in problems[:10])
    if message:
        text += f" The API says: {message.rstrip('.')}."
    status = answer.body.get("current_status") if isinstance(answer.body, dict) else None
    if answer.status == 409 and status:
        text += f" The run is {status}. {_NEXT_STEPS.get(str(status), '')}".rstrip()
    return text

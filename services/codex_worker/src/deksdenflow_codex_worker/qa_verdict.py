"""What QA asks the agent and how its answer is read, shared by the worker's QA job and the QA gate.

The worker (``jobs/qa.py``) and ``deksdenflow qa`` (``gate/``) judge a change the same way: the same prompt
(``qa``, or ``qa-light`` for policy ``light``; a project's ``.deksdenflow/prompts/`` copy wins), filled from
a :class:`QaSubject`; the same model resolution; and the same reading of the answer, JSON valid against the
``qa-verdict`` schema that passes only when the agent said PASS *and* listed nothing blocking. What happens to
an answer that stays invalid is each caller's: the worker records a failing verdict (fail-closed), the gate
exits with "could not evaluate".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deksdenflow_codex_worker.planning import InvalidOutput, parse_json
from deksdenflow_codex_worker.prompts import Prompt, load_prompt
from deksdenflow_codex_worker.settings import WorkerSettings

SCHEMA = "qa-verdict"
# How much of the change the agent sees, in characters: light QA is meant to be the cheap one.
FULL_DIFF_LIMIT = 200_000
LIGHT_DIFF_LIMIT = 60_000


@dataclass(frozen=True)
class QaSubject:
    """What QA judges: the step's contract, the protocol's files around it, and the change."""

    protocol_name: str
    step_name: str
    step_content: str
    # The change: commit line(s) then the unified diff; empty when nothing changed.
    diff: str
    plan_md: str = ""
    context_md: str = ""
    log_md: str = ""
    git_status: str = ""
    last_commit: str = ""


@dataclass(frozen=True)
class Verdict:
    """A valid answer. ``passed`` only when the agent said PASS and nothing is blocking."""

    passed: bool
    summary: str
    blocking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    next_actions: tuple[str, ...] = ()


def qa_prompt(workdir: Path | None, *, light: bool) -> Prompt:
    """The QA prompt of the policy: the project's own copy in ``workdir`` if it has one."""
    return load_prompt("qa-light" if light else "qa", workdir)


def qa_model(settings: WorkerSettings, *, light: bool, chosen: str = "", project: str = "") -> str:
    """The model of a QA call: the one ``chosen`` (for the step, or on the command line), else the light
    model for light QA, else the project's QA model, else the worker's."""
    return chosen or (settings.qa_light_model if light else "") or project or settings.qa_model


def render(prompt: Prompt, subject: QaSubject, *, light: bool) -> str:
    """The prompt filled with ``subject``; the change is cut to the policy's limit."""
    limit = LIGHT_DIFF_LIMIT if light else FULL_DIFF_LIMIT
    return prompt.render(
        protocol_name=subject.protocol_name,
        step_name=subject.step_name,
        plan_md=subject.plan_md,
        context_md=subject.context_md,
        log_md=subject.log_md,
        step_content=subject.step_content,
        git_status=subject.git_status or "(clean)",
        last_commit=subject.last_commit,
        diff=_truncate(subject.diff or "(the step changed no file)", limit),
    )


def parse_verdict(message: str) -> Verdict:
    """The agent's last message as a verdict; ``InvalidOutput`` says why it is not one."""
    value = parse_json(message, SCHEMA)
    findings = value["findings"]
    if value["verdict"] == "FAIL" and not any(str(f).strip() for f in findings["blocking"]):
        # A FAIL that cites nothing cannot be acted on: the reviewer is asked again for its evidence.
        raise InvalidOutput("a FAIL verdict must name its blocking findings (what is wrong, and where)")
    return Verdict(
        passed=value["verdict"] == "PASS" and not findings["blocking"],
        summary=value["summary"],
        blocking=tuple(findings["blocking"]),
        warnings=tuple(findings["warnings"]),
        notes=tuple(findings["notes"]),
        next_actions=tuple(value["next_actions"]),
    )


def _truncate(text: str, limit: int) -> str:
    return (
        text if len(text) <= limit else text[:limit] + f"\n… (truncated, {len(text) - limit} more characters)"
    )

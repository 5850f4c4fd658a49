"""The PR/MR body of a protocol run: what it is, its steps as a checklist with their QA verdicts and
reports, its status and what it has spent so far.

The body is a function of the folded state alone, with no time in it, so the same state always gives
the same bytes: the job that keeps it current (``jobs/pr_body_sync.py``) replaces the whole body and
skips a write when nothing it shows has changed. Everything taken from people or agents (the task, step
names, reasons) is escaped, so it cannot open a link, a mention, an HTML comment or a list of its own.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import quote

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, QaVerdict
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepState, StepStatus
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for

MARKER = "deksdenflow:pr-body v1"

# Characters with a meaning in GitHub or GitLab Markdown wherever they stand in a line (emphasis, code,
# links, HTML, tables, strikethrough, headings' closing hashes, images, entities, mentions, math).
# Line-start markers (``-``, ``+``, ``1.``) need no escape: nothing escaped here starts a line.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!&@$])")
_REASON_LIMIT = 200
# A PR/MR page names the repository's web page: GitHub ``<repo>/pull/<n>``, GitLab
# ``<project>/-/merge_requests/<iid>``.
_GITLAB_MR = re.compile(r"^(https?://[^?#]+?)/-/merge_requests/\d+/?$")
_GITHUB_PR = re.compile(r"^(https?://[^?#]+?)/pull/\d+/?$")


def pr_body(run: ProtocolRunState, *, api_url: str | None) -> str:
    """The PR/MR body of ``run``. ``api_url`` is the public API's base URL: the QA reports of steps
    whose report is not a file on the branch link to ``GET /steps/{id}/qa`` there (none without it)."""
    lines = [
        f"## Protocol {escape(run.protocol_name)}: {escape(run.task_name)}",
        "",
        "Opened by deksdenflow; this description is rewritten as the run advances.",
        "",
        "### Steps",
        "",
        *(_step_line(run, step, api_url) for step in sorted(run.steps, key=lambda s: s.index)),
    ]
    if not run.steps:
        lines.append("No plan yet.")
    lines += [
        "",
        "### Run",
        "",
        f"- Status: {_run_status(run)}",
        f"- Usage so far: {run.input_tokens:,} tokens in · {run.output_tokens:,} tokens out · "
        f"{usd(run.cost_micro_usd)}",
        "",
        f"The plan, the context, the log and every step file are in {_protocol_files(run)}.",
        "",
        f"<!-- {MARKER} run={run.protocol_run_id} -->",
        "",
    ]
    return "\n".join(lines)


def escape(text: str, *, limit: int | None = None) -> str:
    """``text`` on one line (at most ``limit`` characters), shown as written rather than as Markdown."""
    one_line = " ".join(text.split())
    if limit is not None and len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", one_line)


def usd(micro_usd: int) -> str:
    """Millionths of a dollar as dollars with four decimals."""
    return f"${Decimal(micro_usd).scaleb(-6):.4f}"


def repository_page(pr_url: str) -> str | None:
    """The web page of the repository a PR/MR belongs to, read from the PR/MR's own page; None when the
    URL is neither a GitHub pull request nor a GitLab merge request."""
    for pattern in (_GITLAB_MR, _GITHUB_PR):
        found = pattern.match(pr_url)
        if found:
            return found.group(1)
    return None


def file_url(pr_url: str, branch: str, path: str, *, folder: bool = False) -> str | None:
    """The web page of ``path`` on ``branch`` (GitHub ``blob``/``tree``, GitLab ``-/blob``/``-/tree``)."""
    repo = repository_page(pr_url)
    if repo is None or not branch or not path.strip("/"):
        return None
    view = ("tree" if folder else "blob") if _GITHUB_PR.match(pr_url) else ("-/tree" if folder else "-/blob")
    clean = path.removeprefix("./").strip("/")
    return f"{repo}/{view}/{quote(branch, safe='/')}/{quote(clean, safe='/')}"


def _step_line(run: ProtocolRunState, step: StepState, api_url: str | None) -> str:
    box = "x" if step.status is StepStatus.COMPLETED else " "
    status = step.status.value.replace("_", " ")
    if step.status in (StepStatus.FAILED, StepStatus.BLOCKED) and step.failure_reason:
        status += f": {escape(step.failure_reason, limit=_REASON_LIMIT)}"
    parts = [f"- [{box}] **{escape(step.name)}** — {status}"]
    qa = _qa(run, step, api_url)
    if qa:
        parts.append(qa)
    return " · ".join(parts)


def _qa(run: ProtocolRunState, step: StepState, api_url: str | None) -> str:
    """The step's last QA verdict and where its report is; "" before any verdict."""
    if step.qa_policy is QaPolicy.SKIP:
        return "QA skipped"
    if step.last_verdict is QaVerdict.UNSPECIFIED:
        return "QA running" if step.qa_pending else ""
    # Fail-closed, as the verdict itself: anything but PASS is FAIL.
    text = "QA PASS" if step.last_verdict is QaVerdict.PASS else "QA FAIL"
    if step.qa_pending:
        text += " (QA running again)"
    link = _report_url(run, step, api_url)
    return f"{text} · [QA report]({link})" if link else text


def _report_url(run: ProtocolRunState, step: StepState, api_url: str | None) -> str | None:
    """The report file on the protocol branch if the verdict named one, else the API's QA reports."""
    if step.last_report_path:
        on_branch = file_url(run.pr_url, run.protocol_name, step.last_report_path)
        if on_branch:
            return on_branch
    if api_url:
        return f"{api_url.rstrip('/')}/steps/{quote(step.step_run_id, safe='')}/qa"
    return None


def _run_status(run: ProtocolRunState) -> str:
    status = run.status.value
    if run.status is RunStatus.PAUSED and run.paused_from is not None:
        status += f" (from {run.paused_from.value})"
    if run.status is RunStatus.BLOCKED and run.blocked_reason:
        status += f": {escape(run.blocked_reason, limit=_REASON_LIMIT)}"
    if (waits := waiting_for(run)) is not None:
        status += f", waiting for {_WAITING[waits]}"
    return status


# What ``waiting_for`` means, as a person reading the PR understands it.
_WAITING = {
    "queue": "a free slot (run limits)",
    "spec": "its plan to be planned again (a spec audit found problems in it)",
    "checkpoint": "a person's decision at a checkpoint",
    "plan_approval": "the plan's approval",
    "pull_request": "a pull request",
    "review": "review",
    "ci": "green CI to merge",
    "merge": "the merge",
}


def _protocol_files(run: ProtocolRunState) -> str:
    root = run.protocol_root.strip("/")
    url = file_url(run.pr_url, run.protocol_name, root, folder=True)
    name = f"{escape(root)}/"
    return f"[{name}]({url})" if url else name

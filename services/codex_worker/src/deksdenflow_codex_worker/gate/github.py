"""GitHub Actions: workflow-command annotations and the job's step summary.

Under Actions (``GITHUB_ACTIONS=true``) every finding becomes an annotation on stdout (``::error`` for
blocking ones and for a QA that could not evaluate, ``::warning``, ``::notice``), attached to its file and
line when it has them, and the Markdown report is appended to ``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from deksdenflow_codex_worker.gate.report import Finding, Report, Severity

_COMMAND = {
    Severity.BLOCKING: "error",
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.NOTE: "notice",
}
_TITLE = {
    Severity.BLOCKING: "deksdenflow QA (blocking)",
    Severity.ERROR: "deksdenflow QA (could not evaluate)",
    Severity.WARNING: "deksdenflow QA (warning)",
    Severity.NOTE: "deksdenflow QA (note)",
}


def under_actions(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def workflow_commands(report: Report) -> list[str]:
    """One workflow command per finding."""
    return [annotation(f) for f in report.findings()]


def annotation(finding: Finding) -> str:
    props = {"title": _TITLE[finding.severity]}
    if finding.path:
        props["file"] = finding.path
        if finding.line is not None:
            props["line"] = str(finding.line)
    joined = ",".join(f"{key}={_escape_property(value)}" for key, value in props.items())
    return f"::{_COMMAND[finding.severity]} {joined}::{_escape_data(finding.text)}"


def append_summary(env: Mapping[str, str], markdown: str) -> None:
    """Add ``markdown`` to the job's summary page, if the runner gave one."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")


# The escaping of the Actions toolkit (``@actions/core``'s ``command.ts``).
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")

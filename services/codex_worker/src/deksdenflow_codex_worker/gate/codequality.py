"""The verdict as a GitLab Code Quality report (the Code Climate issue subset GitLab reads).

Every finding but the notes is an issue (``description``, ``check_name``, ``fingerprint``, ``severity``,
``location.path`` and ``location.lines.begin``); GitLab shows them in the merge request. An issue needs a
path: a finding that names no file, in a run with no step or task file, points at the repository root.
"""

from __future__ import annotations

from typing import Any

from deksdenflow_codex_worker.gate.report import Report, Severity

_SEVERITY = {
    Severity.BLOCKING: "critical",
    Severity.WARNING: "minor",
    Severity.ERROR: "blocker",
}


def codequality(report: Report) -> list[dict[str, Any]]:
    """The Code Quality issues of ``report``."""
    return [
        {
            "type": "issue",
            "description": f.text,
            "check_name": f"deksdenflow-qa-{f.severity.value}",
            "fingerprint": f.fingerprint,
            "severity": _SEVERITY[f.severity],
            "location": {"path": f.path or ".", "lines": {"begin": f.line or 1}},
        }
        for f in report.findings()
        if f.severity in _SEVERITY
    ]

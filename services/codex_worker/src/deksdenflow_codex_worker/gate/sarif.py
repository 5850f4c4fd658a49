"""The verdict as SARIF 2.1.0 (GitHub code scanning, IDE viewers, any SARIF consumer).

One run of the tool ``deksdenflow-qa``; a result per finding under one of four rules (blocking, warning,
note, and "could not evaluate"), located in the repository (``%SRCROOT%``) when it names a file. The
invocation says whether QA could evaluate at all; the verdict and how it was reached are run properties.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from deksdenflow_codex_worker.gate.report import TOOL, Finding, Outcome, Report, Severity

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT = "%SRCROOT%"

_RULES = {
    Severity.BLOCKING: ("qa-blocking", "A blocking QA finding: the step's contract is not met.", "error"),
    Severity.WARNING: ("qa-warning", "A QA warning: worth fixing, not blocking.", "warning"),
    Severity.NOTE: ("qa-note", "A QA note.", "note"),
    Severity.ERROR: ("qa-not-evaluated", "QA could not evaluate the change (fail-closed).", "error"),
}
_ORDER = list(_RULES)


def sarif(report: Report) -> dict[str, Any]:
    """The SARIF log of ``report``."""
    invocation: dict[str, Any] = {
        "executionSuccessful": report.outcome is not Outcome.ERROR,
        "exitCode": report.exit_code,
    }
    if report.error:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": f"QA could not evaluate: {report.error}"}}
        ]
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "version": _version(),
                        "rules": [_rule(severity) for severity in _ORDER],
                    }
                },
                "originalUriBaseIds": {ROOT: {"uri": report.subject.checkout.as_uri() + "/"}},
                "invocations": [invocation],
                "results": [_result(f) for f in report.findings()],
                "properties": {
                    "verdict": report.verdict_word,
                    "outcome": report.outcome.value,
                    "summary": report.verdict.summary,
                    "subject": report.subject.title,
                    "policy": report.policy,
                    "engine": report.engine,
                    "model": report.model,
                    "prompt": report.prompt.name,
                    "promptVersion": report.prompt.version,
                },
            }
        ],
    }


def _rule(severity: Severity) -> dict[str, Any]:
    rule_id, text, level = _RULES[severity]
    return {
        "id": rule_id,
        "shortDescription": {"text": text},
        "defaultConfiguration": {"level": level},
    }


def _result(finding: Finding) -> dict[str, Any]:
    rule_id, _, level = _RULES[finding.severity]
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": _ORDER.index(finding.severity),
        "level": level,
        "message": {"text": finding.text},
        "partialFingerprints": {"deksdenflowQaFinding/v1": finding.fingerprint},
    }
    if finding.path:
        location: dict[str, Any] = {"artifactLocation": {"uri": finding.path, "uriBaseId": ROOT}}
        if finding.line is not None:
            location["region"] = {"startLine": finding.line}
        result["locations"] = [{"physicalLocation": location}]
    return result


def _version() -> str:
    try:
        return metadata.version("deksdenflow-codex-worker")
    except metadata.PackageNotFoundError:
        return "0"

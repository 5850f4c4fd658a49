"""The gate's result, and its JSON and Markdown forms (SARIF, JUnit, Code Quality: their own modules).

A result that could not be evaluated is written the fail-closed way, as the worker records it: a FAIL whose
one blocking finding is the reason. The findings are plain sentences (the ``qa-verdict`` schema); one that
names a file of the change (``path`` or ``path:line``) points there, the others at the step or task file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deksdenflow_codex_worker.engines.base import TokenCounts
from deksdenflow_codex_worker.gate.subject import Subject
from deksdenflow_codex_worker.prompts import Prompt
from deksdenflow_codex_worker.qa_verdict import Verdict

TOOL = "deksdenflow-qa"

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_MISSING_DEPENDENCY = 3
EXIT_NOT_EVALUATED = 4

# A token that may be a path, with an optional ":line" (and ":column", ignored).
_PATH_TOKEN = re.compile(r"[\w./@+-]+(?::\d+)*")
_LINE = re.compile(r":(\d+)")


class Outcome(StrEnum):
    """How the gate ended: the agent passed the change, failed it, or could not be asked."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    ERROR = "error"


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"
    NOTE = "note"
    # QA could not evaluate: the reason, reported as the failing verdict's blocking finding.
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    text: str
    path: str = ""  # a repository path, "" when neither the finding nor the subject names a file
    line: int | None = None

    @property
    def fingerprint(self) -> str:
        """Stable across runs for the same finding at the same place (what de-duplication keys on)."""
        key = f"{self.severity.value}\0{self.path}\0{self.text}"
        return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Report:
    """Everything the outputs say."""

    verdict: Verdict
    error: str  # why QA could not evaluate; "" when it did
    missing_dependency: bool
    subject: Subject
    policy: str
    prompt: Prompt
    engine: str
    model: str
    usage: TokenCounts
    fail_on: str  # "blocking" or "warning"

    @property
    def outcome(self) -> Outcome:
        if self.error:
            return Outcome.ERROR
        if not self.verdict.passed or (self.fail_on == "warning" and self.verdict.warnings):
            return Outcome.FAIL
        return Outcome.PASS

    @property
    def exit_code(self) -> int:
        if self.error:
            return EXIT_MISSING_DEPENDENCY if self.missing_dependency else EXIT_NOT_EVALUATED
        return EXIT_PASS if self.outcome is Outcome.PASS else EXIT_FAIL

    @property
    def verdict_word(self) -> str:
        return "PASS" if self.verdict.passed else "FAIL"

    def findings(self) -> list[Finding]:
        """Every finding with the file it points at; an evaluation error is one ``ERROR`` finding."""
        if self.error:
            return [Finding(Severity.ERROR, f"QA could not evaluate: {self.error}", self.subject.anchor)]
        known = {*self.subject.change.changed_files, self.subject.anchor} - {""}
        groups = (
            (Severity.BLOCKING, self.verdict.blocking),
            (Severity.WARNING, self.verdict.warnings),
            (Severity.NOTE, self.verdict.notes),
        )
        found = []
        for severity, texts in groups:
            for text in texts:
                path, line = locate(text, known)
                found.append(Finding(severity, text, path or self.subject.anchor, line))
        return found

    def to_json(self) -> dict[str, Any]:
        """The ``qa-verdict`` schema's shape, then how it was reached."""
        change = self.subject.change
        return {
            "summary": self.verdict.summary,
            "findings": {
                "blocking": list(self.verdict.blocking),
                "warnings": list(self.verdict.warnings),
                "notes": list(self.verdict.notes),
            },
            "next_actions": list(self.verdict.next_actions),
            "verdict": self.verdict_word,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "error": self.error or None,
            "policy": self.policy,
            "prompt": self.prompt.name,
            "prompt_version": self.prompt.version,
            "prompt_source": self.prompt.source,
            "engine": self.engine,
            "model": self.model,
            "fail_on": self.fail_on,
            "subject": {
                "kind": self.subject.kind,
                "protocol": self.subject.qa.protocol_name if self.subject.kind == "step" else None,
                "step": self.subject.qa.step_name,
                "file": self.subject.anchor or None,
                "base": change.base,
                "base_sha": change.base_sha,
                "head": change.head or None,
                "changed_files": list(change.changed_files),
            },
            "locations": [
                {"severity": f.severity.value, "text": f.text, "path": f.path or None, "line": f.line}
                for f in self.findings()
            ],
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "cached_input_tokens": self.usage.cached_input_tokens,
                "output_tokens": self.usage.output_tokens,
                "reasoning_output_tokens": self.usage.reasoning_output_tokens,
            },
        }


def failed_closed(reason: str) -> Verdict:
    """The verdict of a QA that could not evaluate (as the worker's ``fail_closed``)."""
    return Verdict(passed=False, summary=reason, blocking=(reason,))


def locate(text: str, known: set[str]) -> tuple[str, int | None]:
    """The first file of ``known`` that ``text`` names (``path``, ``./path``, ``path:12``), with its line."""
    for token in _PATH_TOKEN.findall(text):
        path, _, rest = token.partition(":")
        path = path.removeprefix("./").rstrip(".")
        if path in known:
            line = _LINE.match(f":{rest}") if rest else None
            return path, int(line.group(1)) if line else None
    return "", None


def markdown(report: Report) -> str:
    """A short human report: the GitHub step summary, the ``--markdown`` file, the default stdout."""
    heading = {
        Outcome.PASS: "PASS",
        Outcome.FAIL: "FAIL" if not report.verdict.passed else "FAIL (warnings, with --fail-on warning)",
        Outcome.ERROR: "could not evaluate",
    }[report.outcome]
    change = report.subject.change
    head = f"`{change.head}`" if change.head else "the working tree"
    u = report.usage
    lines = [
        f"### deksdenflow QA: {heading}",
        "",
        report.verdict.summary,
        "",
        "| | |",
        "| --- | --- |",
        f"| Subject | {report.subject.title} |",
        f"| Change | `{change.base}` (merge base `{change.base_sha[:12]}`) → {head}, "
        f"{len(change.changed_files)} file(s) |",
        f"| Policy · engine · model | {report.policy} · {report.engine} · {report.model} |",
        f"| Prompt | `{report.prompt.name}` {report.prompt.version} ({report.prompt.source}) |",
        f"| Tokens | {u.input_tokens} in ({u.cached_input_tokens} cached) · {u.output_tokens} out |",
        f"| Exit code | {report.exit_code} |",
    ]
    sections = (
        ("Blocking", report.verdict.blocking),
        ("Warnings", report.verdict.warnings),
        ("Notes", report.verdict.notes),
        ("Next actions", report.verdict.next_actions),
    )
    for title, items in sections:
        if items:
            lines += ["", f"**{title}**", "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"

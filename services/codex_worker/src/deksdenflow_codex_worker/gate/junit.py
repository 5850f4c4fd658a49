"""The verdict as JUnit XML (GitLab test reports, Jenkins, any CI that reads JUnit).

One suite: a ``verdict`` case (a failure for FAIL, an error when QA could not evaluate), one failing case
per blocking finding, and one case per warning (failing only with ``--fail-on warning``). Notes and next
actions go to the verdict case's output, so a passing run still shows what the agent said.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from deksdenflow_codex_worker.gate.report import Finding, Outcome, Report, Severity

CLASS = "deksdenflow.qa"
_NAME_LIMIT = 200


def junit(report: Report) -> str:
    """The JUnit XML document of ``report``."""
    suite = ET.Element("testsuite", name=f"deksdenflow qa: {report.subject.title}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", report.verdict_word),
        ("outcome", report.outcome.value),
        ("policy", report.policy),
        ("engine", report.engine),
        ("model", report.model),
        ("prompt", report.prompt.name),
        ("prompt_version", report.prompt.version),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    _verdict_case(suite, report)
    for finding in report.findings():
        if finding.severity in (Severity.BLOCKING, Severity.WARNING):
            _finding_case(suite, finding, failing=_fails(report, finding))
    cases = suite.findall("testcase")
    counts = {
        "tests": len(cases),
        "failures": sum(1 for c in cases if c.find("failure") is not None),
        "errors": sum(1 for c in cases if c.find("error") is not None),
        "skipped": 0,
    }
    suite.attrib.update({k: str(v) for k, v in counts.items()})
    root = ET.Element("testsuites", {"name": "deksdenflow qa", **{k: str(v) for k, v in counts.items()}})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _verdict_case(suite: ET.Element, report: Report) -> None:
    case = ET.SubElement(suite, "testcase", classname=CLASS, name="verdict")
    if report.subject.anchor:
        case.set("file", report.subject.anchor)
    if report.outcome is Outcome.ERROR:
        ET.SubElement(case, "error", message=report.error, type="not-evaluated").text = report.error
    elif report.outcome is Outcome.FAIL:
        failure = ET.SubElement(case, "failure", message=report.verdict.summary, type=report.verdict_word)
        failure.text = "\n".join(report.verdict.blocking or report.verdict.warnings)
    said = [f"{report.verdict_word}: {report.verdict.summary}"]
    said += [f"note: {n}" for n in report.verdict.notes]
    said += [f"next: {a}" for a in report.verdict.next_actions]
    ET.SubElement(case, "system-out").text = "\n".join(said)


def _finding_case(suite: ET.Element, finding: Finding, *, failing: bool) -> None:
    name = finding.text if len(finding.text) <= _NAME_LIMIT else finding.text[: _NAME_LIMIT - 1] + "…"
    case = ET.SubElement(suite, "testcase", classname=f"{CLASS}.{finding.severity.value}", name=name)
    if finding.path:
        case.set("file", finding.path)
    if finding.line is not None:
        case.set("line", str(finding.line))
    if failing:
        ET.SubElement(case, "failure", message=finding.text, type=finding.severity.value).text = finding.text
    else:
        ET.SubElement(case, "system-out").text = finding.text


def _fails(report: Report, finding: Finding) -> bool:
    return finding.severity is Severity.BLOCKING or report.fail_on == "warning"

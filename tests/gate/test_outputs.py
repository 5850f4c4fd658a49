"""The gate's reports, read back by their consumers: SARIF against the SARIF 2.1.0 JSON schema, JUnit XML
by a JUnit parser, GitLab Code Quality's required fields, GitHub Actions' annotations and step summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deksdenflow_fakes.responses_api import FakeResponsesApi, Turn
from junitparser import Error, Failure, JUnitXml, TestSuite

from tests.gate.conftest import PROTOCOL, STEP, Gate, Ran
from tests.gate.test_exit_codes import FAIL, PASS

FIXTURES = Path(__file__).parent / "fixtures"
# The SARIF 2.1.0 schema as two SARIF tools ship it (see fixtures/README.md): Microsoft's SARIF Multitool
# (JSON Schema 2020-12) and the schemastore copy "2.1.0-rtm.5" (draft-04) that jest-sarif validates with.
SARIF_SCHEMAS = {
    "sarif-2.1.0.schema.json": jsonschema.Draft202012Validator,
    "sarif-2.1.0-rtm.5.schema.json": jsonschema.Draft4Validator,
}
BLOCKING = FAIL["findings"]["blocking"][0]
WARNING = FAIL["findings"]["warnings"][0]


def valid_sarif(ran: Ran) -> dict[str, Any]:
    log: dict[str, Any] = ran.json("qa.sarif")
    for name, validator in SARIF_SCHEMAS.items():
        schema = json.loads((FIXTURES / name).read_text())
        validator.check_schema(schema)
        errors = [f"{list(e.path)}: {e.message}" for e in validator(schema).iter_errors(log)]
        assert errors == [], f"not valid against {name}"
    return log


def junit_suite(ran: Ran) -> TestSuite:
    xml = JUnitXml.fromfile(str(ran.out / "junit.xml"))
    [suite] = list(xml)
    assert isinstance(suite, TestSuite)
    return suite


def test_a_fail_in_every_format(gate: Gate, model: FakeResponsesApi, tmp_path: Path) -> None:
    model.push(Turn.json(FAIL))
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps' summary\n")
    ran = gate.step(env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert ran.code == 1, ran.stderr

    [run] = valid_sarif(ran)["runs"]
    assert run["tool"]["driver"]["name"] == "deksdenflow-qa"
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["properties"]["verdict"] == "FAIL"
    by_rule = {r["ruleId"]: r for r in run["results"]}
    blocking = by_rule["qa-blocking"]
    assert (blocking["level"], blocking["message"]["text"]) == ("error", BLOCKING)
    where = blocking["locations"][0]["physicalLocation"]
    assert where["artifactLocation"] == {"uri": "greeting.py", "uriBaseId": "%SRCROOT%"}
    assert where["region"] == {"startLine": 2}
    assert by_rule["qa-warning"]["level"] == "warning"

    suite = junit_suite(ran)
    assert (suite.tests, suite.failures, suite.errors) == (3, 2, 0)
    cases = {case.name: case for case in suite}
    assert isinstance(cases["verdict"].result[0], Failure)
    assert cases[BLOCKING].classname == "deksdenflow.qa.blocking"
    assert isinstance(cases[BLOCKING].result[0], Failure)
    assert cases[WARNING].is_passed  # a warning fails only with --fail-on warning

    issues = ran.json("codequality.json")
    assert [i["severity"] for i in issues] == ["critical", "minor"]
    for issue in issues:
        assert {"description", "check_name", "fingerprint", "severity", "location"} <= issue.keys()
        assert issue["location"]["path"] == "greeting.py"
    assert issues[0]["location"]["lines"]["begin"] == 2
    assert len({i["fingerprint"] for i in issues}) == 2

    markdown = (ran.out / "verdict.md").read_text()
    assert markdown.startswith("### deksdenflow QA: FAIL")
    assert f"- {BLOCKING}" in markdown
    assert summary.read_text() == "earlier steps' summary\n" + markdown + "\n"

    commands = [line for line in ran.stdout.splitlines() if line.startswith("::")]
    assert commands == [
        "::error title=deksdenflow QA (blocking),file=greeting.py,line=2::" + BLOCKING,
        "::warning title=deksdenflow QA (warning),file=greeting.py::" + WARNING,
    ]


def test_a_pass_in_every_format(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(PASS))
    ran = gate.step("--fail-on", "warning")
    assert ran.code == 0, ran.stderr
    [run] = valid_sarif(ran)["runs"]
    # The note points at the step file: it names no file of the change.
    [note] = run["results"]
    assert note["level"] == "note"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == f"{PROTOCOL}/{STEP}"
    suite = junit_suite(ran)
    assert (suite.tests, suite.failures, suite.errors) == (1, 0, 0)
    assert ran.json("codequality.json") == []
    assert not any(line.startswith("::") for line in ran.stdout.splitlines())  # not under Actions


def test_could_not_evaluate_in_every_format(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.message("no idea"), Turn.message("still no idea"))
    ran = gate.step(env={"GITHUB_ACTIONS": "true"})
    assert ran.code == 4, ran.stderr
    [run] = valid_sarif(ran)["runs"]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "not JSON" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert [r["ruleId"] for r in run["results"]] == ["qa-not-evaluated"]
    suite = junit_suite(ran)
    assert (suite.tests, suite.failures, suite.errors) == (1, 0, 1)
    assert isinstance(next(iter(suite)).result[0], Error)
    [issue] = ran.json("codequality.json")
    assert issue["severity"] == "blocker"
    [command] = [line for line in ran.stdout.splitlines() if line.startswith("::")]
    assert command.startswith("::error title=deksdenflow QA (could not evaluate)")


@pytest.mark.parametrize("fmt", ["json", "junit"])
def test_one_output_on_stdout(gate: Gate, model: FakeResponsesApi, fmt: str) -> None:
    model.push(Turn.json(PASS))
    ran = gate.run("--protocol-root", PROTOCOL, "--step", STEP, f"--{fmt}", "-")
    assert ran.code == 0, ran.stderr
    if fmt == "junit":
        assert ran.stdout.startswith("<?xml")
        JUnitXml.fromstring(ran.stdout)
    else:
        json.loads(ran.stdout)  # nothing but the document

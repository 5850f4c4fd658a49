"""The starter CI files onboarding installs carry an opt-in QA job that runs ``deksdenflow qa`` with options
the gate has, and hands its reports to the forge."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml
from deksdenflow_codex_worker.gate.cli import build_parser
from deksdenflow_git_ci_worker.jobs.onboarding import starter_files

STARTER = resources.files("deksdenflow_git_ci_worker") / "starter"
GITHUB = ".github/workflows/deksdenflow-ci.yml"
GITLAB = ".gitlab-ci.yml"


def load(rel: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((STARTER / rel).read_text())
    return loaded


def gate_options() -> set[str]:
    return {option for action in build_parser()._actions for option in action.option_strings}


def options_used(script: str) -> set[str]:
    """The ``--options`` of the script's ``deksdenflow qa`` and of the ``set --`` lines that feed it."""
    feeding = ("set --", "if ")
    lines = [
        line for line in script.splitlines() if "deksdenflow qa" in line or line.strip().startswith(feeding)
    ]
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", "\n".join(lines)))


def output_of(script: str, option: str) -> str:
    found = re.search(rf"{option} (\S+)", script)
    assert found is not None, f"the QA command writes {option}"
    return found.group(1)


def test_both_starter_files_are_installed_and_keep_their_ci_job() -> None:
    installed = {rel for rel, _, _ in starter_files()}
    assert {GITHUB, GITLAB} <= installed
    assert "ci" in load(GITHUB)["jobs"]
    assert "ci" in load(GITLAB)


def test_github_qa_job_is_opt_in_and_uploads_its_reports() -> None:
    workflow = load(GITHUB)
    qa = workflow["jobs"]["qa"]
    assert "vars.DEKSDENFLOW_QA_GATE == 'true'" in qa["if"]
    assert qa["permissions"]["security-events"] == "write"
    steps = {step.get("name", ""): step for step in qa["steps"]}
    script = steps["deksdenflow QA"]["run"]
    used = options_used(script)
    assert {"--base", "--task-file", "--model", "--sarif"} <= used
    assert used <= gate_options()
    assert steps["deksdenflow QA"]["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    upload = steps["findings to code scanning"]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["with"]["sarif_file"] == output_of(script, "--sarif")
    checkout = qa["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # the merge base must be there


def test_gitlab_qa_job_is_opt_in_and_reports_junit_and_code_quality() -> None:
    pipeline = load(GITLAB)
    qa = pipeline["qa"]
    [rule] = qa["rules"]
    assert '$DEKSDENFLOW_QA_GATE == "true"' in rule["if"]
    assert qa["stage"] in pipeline["stages"]
    script = "\n".join(qa["script"])
    used = options_used(script)
    assert {"--base", "--task-file", "--model", "--junit", "--codequality"} <= used
    assert used <= gate_options()
    reports = qa["artifacts"]["reports"]
    assert reports["junit"] == output_of(script, "--junit")
    assert reports["codequality"] == output_of(script, "--codequality")
    assert qa["artifacts"]["when"] == "always"
    assert qa["variables"]["GIT_DEPTH"] == 0

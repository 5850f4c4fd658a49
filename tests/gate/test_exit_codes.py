"""``deksdenflow qa`` as a process, with the real Codex CLI against the fake Responses API: every exit code
produced for real, and the same prompt, schema and fail-closed rules as the worker's QA."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest
from deksdenflow_codex_worker.prompts import version_of
from deksdenflow_core.assets import prompt_text, schema
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    Usage,
    output_schema,
    user_text,
)

from tests.gate.conftest import PROTOCOL, STEP, STEP_TEXT, Gate

USAGE = Usage(input_tokens=1200, cached_input_tokens=200, output_tokens=300, reasoning_output_tokens=50)
PASS: dict[str, Any] = {
    "summary": "greet() is there and returns the greeting.",
    "findings": {"blocking": [], "warnings": [], "notes": ["small and clear"]},
    "next_actions": [],
    "verdict": "PASS",
}
FAIL: dict[str, Any] = {
    "summary": "greet() returns the bare name.",
    "findings": {
        "blocking": ["greeting.py:2 returns the name, not `Hello, <name>!`"],
        "warnings": ["no test covers greeting.py"],
        "notes": [],
    },
    "next_actions": ["return f'Hello, {name}!'"],
    "verdict": "FAIL",
}


def with_warning(verdict: Mapping[str, Any]) -> dict[str, Any]:
    return {**verdict, "findings": {**verdict["findings"], "warnings": ["no test covers greeting.py"]}}


def test_pass_exits_0_with_the_workers_prompt_and_schema(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(PASS, usage=USAGE))
    ran = gate.step()
    assert ran.code == 0, ran.stderr
    [request] = model.calls
    prompt = user_text(request)
    assert prompt.startswith(
        f"You are the QA validator of step `{STEP}` of deksdenflow protocol 0001-add-greeting"
    )
    assert STEP_TEXT in prompt
    assert "Add a greeting module." in prompt  # the plan
    assert "+def greet(name):" in prompt  # the step's commit
    assert "feat(01-greeting.md): add greet" in prompt
    assert output_schema(request) == schema("qa-verdict")
    verdict = ran.json()
    assert verdict["verdict"] == "PASS"
    assert verdict["outcome"] == "pass"
    assert verdict["exit_code"] == 0
    assert verdict["prompt"] == "qa"
    assert verdict["prompt_version"] == version_of(prompt_text("qa"))
    assert verdict["prompt_source"] == "builtin"
    assert (verdict["engine"], verdict["model"]) == ("codex", CODEX_TEST_MODEL)
    assert verdict["usage"]["input_tokens"] == 1200
    assert verdict["subject"]["changed_files"] == ["greeting.py"]
    assert "### deksdenflow QA: PASS" in ran.stdout  # the Markdown on stdout; logs on stderr
    assert "QA done" in ran.stderr
    assert "QA done" not in ran.stdout


def test_fail_exits_1(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(FAIL, usage=USAGE))
    ran = gate.step()
    assert ran.code == 1, ran.stderr
    verdict = ran.json()
    assert verdict["verdict"] == "FAIL"
    assert verdict["findings"]["blocking"] == FAIL["findings"]["blocking"]
    assert verdict["next_actions"] == FAIL["next_actions"]


def test_a_pass_that_lists_something_blocking_is_a_fail(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json({**PASS, "findings": FAIL["findings"]}))
    ran = gate.step()
    assert ran.code == 1, ran.stderr
    assert ran.json()["verdict"] == "FAIL"


def test_fail_on_warning_fails_a_pass_with_warnings(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(with_warning(PASS)), Turn.json(with_warning(PASS)))
    assert gate.step().code == 0
    ran = gate.step("--fail-on", "warning")
    assert ran.code == 1, ran.stderr
    assert (ran.json()["verdict"], ran.json()["outcome"]) == ("PASS", "fail")


def test_output_invalid_after_the_re_ask_exits_4(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.message("Looks good to me!"), Turn.json({"verdict": "PASS"}))
    ran = gate.step()
    assert ran.code == 4, ran.stderr
    assert len(model.calls) == 2
    assert "Your previous answer was rejected: not JSON" in user_text(model.calls[1])
    verdict = ran.json()
    # Fail-closed, as the worker records it: a FAIL whose blocking finding is the reason.
    assert (verdict["verdict"], verdict["outcome"], verdict["exit_code"]) == ("FAIL", "error", 4)
    assert "does not match qa-verdict" in verdict["error"]
    assert verdict["findings"]["blocking"] == [verdict["summary"]]


def test_a_valid_answer_after_the_re_ask_counts(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.message("```json\nnot quite\n```"), Turn.json(PASS))
    ran = gate.step()
    assert ran.code == 0, ran.stderr
    assert len(model.calls) == 2


def test_engine_error_exits_4(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.http_error(401, "Incorrect API key provided"))
    ran = gate.step()
    assert ran.code == 4, ran.stderr
    assert "the codex engine failed" in ran.json()["error"]


def test_engine_timeout_exits_4_and_stops_the_agent(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(PASS).held(120))
    ran = gate.step("--timeout", "2")
    assert ran.code == 4, ran.stderr
    assert "did not finish within 2s" in ran.json()["error"]
    assert len(model.calls) == 1
    assert not agents_working_in(gate.checkout), "the agent was stopped with the gate"


def test_missing_agent_cli_exits_3(gate: Gate, model: FakeResponsesApi, tmp_path: Path) -> None:
    ran = gate.step("--codex-bin", str(tmp_path / "no-such-codex"))
    assert ran.code == 3, ran.stderr
    assert "no-such-codex" in ran.json()["error"]
    # No codex on PATH at all (git still is: the gate reads the change with it).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(git_binary())
    ran = gate.run("--protocol-root", PROTOCOL, "--step", STEP, env={"PATH": str(bin_dir)}, codex=False)
    assert ran.code == 3, ran.stderr
    assert "codex" in ran.stderr
    assert model.calls == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "say what to judge"),
        (("--step", STEP), "go together"),
        (("--task", "Add greet"), "need --base"),
        (("--protocol-root", PROTOCOL, "--step", STEP, "--task", "x", "--base", "HEAD"), "not both"),
        (("--protocol-root", PROTOCOL, "--step", "09-nothing.md"), "does not exist"),
        (("--protocol-root", PROTOCOL, "--step", STEP, "--base", "no-such-ref"), "no such commit"),
        (("--protocol-root", PROTOCOL, "--step", STEP, "--policy", "heavy"), "invalid choice"),
        (("--protocol-root", PROTOCOL, "--step", STEP, "--timeout", "0"), "more than 0"),
        (("--protocol-root", PROTOCOL, "--step", STEP, "--pass-env", "NOT_SET_ANYWHERE"), "not set"),
        (("--task", "x", "--base", "HEAD", "--json", "-", "--sarif", "-"), "only one output"),
    ],
)
def test_usage_errors_exit_2(gate: Gate, model: FakeResponsesApi, args: tuple[str, ...], says: str) -> None:
    ran = gate.run(*args, direct=True)
    assert ran.code == 2, ran.stderr
    assert says in ran.stderr
    assert model.calls == []


def test_outside_a_checkout_exits_2(gate: Gate, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    ran = gate.run("--task", "x", "--base", "HEAD", "--repo", str(elsewhere))
    assert ran.code == 2, ran.stderr
    assert "not inside a git checkout" in ran.stderr


def test_light_policy_uses_the_light_prompt(gate: Gate, model: FakeResponsesApi) -> None:
    model.push(Turn.json(PASS))
    ran = gate.step("--policy", "light")
    assert ran.code == 0, ran.stderr
    assert user_text(model.calls[0]).startswith(f"You are a light QA check of step `{STEP}`")
    verdict = ran.json()
    assert (verdict["prompt"], verdict["policy"]) == ("qa-light", "light")
    assert verdict["prompt_version"] == version_of(prompt_text("qa-light"))


def test_the_steps_planned_policy_is_the_default(gate: Gate, model: FakeResponsesApi) -> None:
    spec = '{"steps": [{"filename": "01-greeting.md", "qa_policy": "light"}]}\n'
    (gate.checkout / PROTOCOL / "spec.json").write_text(spec)
    model.push(Turn.json(PASS))
    ran = gate.step()
    assert ran.code == 0, ran.stderr
    assert ran.json()["policy"] == "light"


def test_the_projects_own_prompt_wins(gate: Gate, model: FakeResponsesApi) -> None:
    own = "Project QA of $step_name: judge strictly.\n$step_content\n$diff\nJSON only.\n"
    prompts = gate.checkout / ".deksdenflow" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "qa.md").write_text(own)
    model.push(Turn.json(PASS))
    ran = gate.step()
    assert ran.code == 0, ran.stderr
    assert user_text(model.calls[0]).startswith(f"Project QA of {STEP}: judge strictly.")
    verdict = ran.json()
    assert verdict["prompt_version"] == version_of(own)
    assert verdict["prompt_source"] == ".deksdenflow/prompts/qa.md"


def test_a_change_and_its_task_without_protocols(gate: Gate, model: FakeResponsesApi) -> None:
    (gate.checkout / "farewell.py").write_text("def bye():\n    return 'bye'\n")  # not committed yet
    (gate.checkout / "task.md").write_text("Add greet() and bye().\n")
    model.push(Turn.json(PASS))
    ran = gate.run("--base", "HEAD~1", "--task-file", "task.md", "--json", str(gate.out / "verdict.json"))
    assert ran.code == 0, ran.stderr
    prompt = user_text(model.calls[0])
    assert "Add greet() and bye()." in prompt
    assert "+def greet(name):" in prompt  # committed
    assert "+def bye():" in prompt  # untracked, in the working tree
    subject = ran.json()["subject"]
    assert subject["kind"] == "task"
    assert subject["changed_files"] == ["farewell.py", "greeting.py", "task.md"]


def test_the_scripted_engine_needs_no_model(gate: Gate, model: FakeResponsesApi) -> None:
    script = gate.checkout / ".deksdenflow" / "scripted.json"
    script.parent.mkdir()
    script.write_text(json.dumps({"qa": {"*": {"message": FAIL}}}))
    ran = gate.run("--protocol-root", PROTOCOL, "--step", STEP, "--engine", "scripted", codex=False)
    assert ran.code == 1, ran.stderr
    assert model.calls == []


def git_binary() -> str:
    found = shutil.which("git")
    assert found is not None
    return found


def agents_working_in(checkout: Path) -> list[psutil.Process]:
    """Processes whose command line names ``checkout`` (the agent runs with ``-C <checkout>``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(checkout) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found

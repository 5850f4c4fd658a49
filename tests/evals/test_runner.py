"""``make eval`` in small: one task with the baseline, the careless exec prompt and the claude-code
variant, through the whole system (``deksdenflow run``, the real Codex and Claude Code CLIs on the
shipped cassettes). The worse variant is a
regression: exit 1 and its table line; the evaluation is in the log, and re-scoring its stored runs —
their branches and events, no agent call — gives the same table and the same exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.__main__ import main

REGRESSION = "  REGRESSION: resolved 0% < 100%; QA agreement 0% < 100%"


def test_a_worse_prompt_variant_is_caught_and_the_evaluation_rescored(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = home / "table.txt"
    args = ["--home", str(home), "--table", str(table)]
    code = main(
        [
            "run",
            "--variants",
            "careless-exec,claude",
            "--tasks",
            "add-greeting",
            "--ignore-expectations",
            *args,
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    first = table.read_text()
    assert REGRESSION in first
    assert first.endswith("FAIL: careless-exec regressed: resolved 0% < 100%; QA agreement 0% < 100%\n")
    rows = [line.split() for line in first.splitlines() if line.startswith("  add-greeting")]
    # baseline resolved with QA PASS; claude (the claude CLI ran its Read and Write tools) too;
    # careless-exec: greet() not exported (1 of 2 hidden tests), QA PASS
    assert [r[:6] for r in rows] == [
        ["add-greeting", "yes", "2/2", "1/1", "PASS", "yes"],
        ["add-greeting", "yes", "2/2", "1/1", "PASS", "yes"],
        ["add-greeting", "no", "1/2", "1/1", "PASS", "no"],
    ]
    assert "== claude: claude-code:claude-sonnet-4-5 built-in prompts\n" in first
    assert "Wall time (varies" in out.split("--- varies from run to run")[1]
    evaluation_id = next(line.split()[1] for line in out.splitlines() if line.startswith("Evaluation "))

    assert main(["rescore", evaluation_id, *args]) == 1
    again = capsys.readouterr().out
    assert f"Evaluation {evaluation_id} (re-scored)" in again
    assert table.read_text() == first  # the same runs by the same scorers: the same table

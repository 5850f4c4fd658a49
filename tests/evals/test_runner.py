"""``make eval`` in small: one task with the baseline and the careless exec prompt, through the whole
system (``deksdenflow run``, the real Codex CLI on the shipped cassettes): the worse variant is a
regression (exit 1, its table line), the evaluation is in the log and readable, and a re-score of its
stored runs — their branches and events, no agent call — gives the same conclusion."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evals.models import ModelServer
from evals.runner import Options, evaluate, rescore
from evals.system import local_system
from evals.tasks import load
from evals.variants import load as load_variants


@pytest.fixture
def home() -> Iterator[Path]:
    """Under the system temp dir, not pytest's private one: the embedded PostgreSQL's user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="deksdenflow-eval-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_worse_prompt_variant_is_caught_and_the_evaluation_rescored(home: Path) -> None:
    matrix = load_variants().only(["careless-exec"])
    tasks = [load("add-greeting")]
    with ModelServer() as models:
        async with local_system(home / "system", models, concurrency=2) as h:
            outcome = await evaluate(
                h, models, matrix, tasks, home / "origins", Options(ignore_expectations=True)
            )
            assert outcome.exit_code == 1
            assert "  REGRESSION: resolved 0% < 100%; QA agreement 0% < 100%" in outcome.table
            assert outcome.problems == ["careless-exec regressed: resolved 0% < 100%; QA agreement 0% < 100%"]
            line = next(
                x for x in outcome.table.splitlines() if x.startswith("  add-greeting") and "no " in x
            )
            assert line.split()[:5] == ["add-greeting", "no", "1/2", "1/1", "PASS"]  # greet() not exported

            again = await rescore(h.api, outcome.evaluation_id)
            # same runs, same scorers: the same scores and regressions (the stored canary flag now applies)
            assert again.regressions == outcome.regressions
            assert again.summaries == outcome.summaries
            stored = (await h.api.get(f"/evaluations/{outcome.evaluation_id}")).json()
            # re-scored as stored: careless-exec is the shipped canary, so its regression passes the re-score
            assert (stored["status"], stored["rescores"], stored["passed"]) == ("completed", 1, True)
            assert {s["variant_id"] for s in stored["scores"]} == {"baseline", "careless-exec"}
    assert not models.unrouted

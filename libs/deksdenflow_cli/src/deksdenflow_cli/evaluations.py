"""``eval list|show``: the evaluations ``make eval`` recorded in the log (variants compared with a
baseline on fixture tasks), and one evaluation's summaries and run scores."""

from __future__ import annotations

from typing import Any

import click

from deksdenflow_cli.output import render
from deksdenflow_cli.root import cli, output_options, state

LIST_COLUMNS = ("id", "mode", "baseline", "status", "passed", "variants", "rescores", "started_at")
SCORE_COLUMNS = (
    "variant_id",
    "task_id",
    "resolved",
    "qa_verdict",
    "qa_agrees",
    "input_tokens",
    "output_tokens",
    "cost_micro_usd",
    "turns",
    "guardrail_violations",
    "branch",
)


@cli.group("eval")
def eval_group() -> None:
    """Evaluations of prompt, model and engine variants (make eval)."""


@eval_group.command("list")
@output_options
def eval_list(output: str, fields: tuple[str, ...]) -> None:
    """Evaluations, newest first."""
    page = state().client.call("evaluation.list")
    rows: list[dict[str, Any]] = [
        {**e, "variants": ",".join(v["id"] for v in e["variants"])} for e in page["data"]
    ]
    render(
        rows if output == "table" else page["data"], output, columns=LIST_COLUMNS, fields=fields, many=True
    )


@eval_group.command("show")
@click.argument("evaluation_id")
@output_options
def eval_show(evaluation_id: str, output: str, fields: tuple[str, ...]) -> None:
    """One evaluation: the scores of its runs (the latest re-score's), then each variant's summary."""
    evaluation = state().client.call("evaluation.get", evaluation_id=evaluation_id)
    if output in ("json", "yaml") or fields:
        render(evaluation, output, columns=LIST_COLUMNS, fields=fields)
        return
    render(evaluation["scores"], output, columns=SCORE_COLUMNS, many=True)
    for summary in evaluation["summaries"]:
        why = "; ".join(summary.get("regressions", [])) or "no regression"
        click.echo(
            f"{summary['variant_id']}: resolved {summary['resolved']}/{summary['tasks']}, QA agrees "
            f"{summary['qa_agreements']}/{summary['qa_verdicts']}, {why}"
        )
    verdict = "passed" if evaluation["passed"] else "failed" if evaluation["passed"] is False else "running"
    click.echo(
        f"evaluation {evaluation['id']} ({evaluation['mode']}, baseline {evaluation['baseline']}): {verdict}"
    )

"""``usage``: tokens and cost of the agent calls, summed by project, protocol, model, phase, engine or day;
``prompts``: the prompt registry (each prompt's versions with their usage and outcomes)."""

from __future__ import annotations

import click

from deksdenflow_cli import names
from deksdenflow_cli.output import render
from deksdenflow_cli.root import cli, output_options, state

USAGE_COLUMNS = ("key", "calls", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd")


@cli.command()
@click.option("--project", "project_ref", help="Only this project (name or id).")
@click.option("--protocol", "protocol_ref", help="Only this run (id or PROJECT/NAME).")
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["project", "protocol", "model", "phase", "engine", "day"]),
    default="model",
    show_default=True,
)
@click.option("--since", help="Calls recorded at or after this time (ISO 8601, e.g. 2026-12-01).")
@click.option("--until", help="Calls recorded before this time (ISO 8601).")
@output_options
def usage(
    project_ref: str | None,
    protocol_ref: str | None,
    group_by: str,
    since: str | None,
    until: str | None,
    output: str,
    fields: tuple[str, ...],
) -> None:
    """Tokens and cost, largest cost first; the table ends with the total (json: {data, total})."""
    client = state().client
    params = {
        "project_id": names.project_id(client, project_ref) if project_ref else None,
        "protocol_run_id": names.protocol_id(client, protocol_ref) if protocol_ref else None,
        "group_by": group_by,
        "since": since,
        "until": until,
    }
    report = client.call("usage", params=params)
    if output == "table" and not fields:
        render([*report["data"], report["total"]], output, columns=USAGE_COLUMNS, many=True)
    elif output in ("json", "yaml") and not fields:
        render(report, output, columns=USAGE_COLUMNS)
    else:
        render(report["data"], output, columns=USAGE_COLUMNS, fields=fields, many=True)


PROMPT_COLUMNS = ("name", "phase", "version", "builtin", "calls", "cost_micro_usd", "outcomes", "last_used")


@cli.command()
@output_options
def prompts(output: str, fields: tuple[str, ...]) -> None:
    """Every prompt with its versions (built-in first): calls, cost and outcomes (plans, executions
    completed, QA verdicts, step files decomposition refined or kept as planned); json gives the registry
    as the API does."""
    page = state().client.call("prompts")
    if output in ("json", "yaml") and not fields:
        render(page["data"], output, columns=PROMPT_COLUMNS, many=True)
        return
    rows = [
        {"name": p["name"], "phase": p["phase"], **version} for p in page["data"] for version in p["versions"]
    ]
    render(rows, output, columns=PROMPT_COLUMNS, fields=fields, many=True)

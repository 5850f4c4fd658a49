"""Options that say how a project works: its engines and models per phase, and its run policy (the same
options on ``project create``, ``project run-policy set`` and, as overrides, ``protocol create``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from deksdenflow_cli.exits import USAGE, CliError

F = TypeVar("F", bound=Callable[..., Any])

PHASES = ("planning", "decompose", "exec", "qa", "discovery")
ENGINES = ("codex", "claude-code", "scripted")


def engine_options(func: F) -> F:
    func = click.option(
        "--model",
        "models",
        multiple=True,
        metavar="PHASE=MODEL",
        help=f"The model of a phase ({', '.join(PHASES)}); repeatable.",
    )(func)
    func = click.option(
        "--engine-for",
        "engines_for",
        multiple=True,
        metavar="PHASE=ENGINE",
        help="The engine of one phase, over --engine; repeatable.",
    )(func)
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        help="The agent engine of every phase (scripted: no model, deterministic; needs no credentials).",
    )(func)


def fallback_option(func: F) -> F:
    return click.option(
        "--fallback",
        "fallbacks",
        multiple=True,
        metavar="PHASE=ENGINE[:MODEL]",
        help="The next engine (and model) of a phase's fallback chain, in order; repeatable. Taken on a "
        "rate or usage limit, the context window, a provider error or a timeout.",
    )(func)


def fallbacks_body(fallbacks: tuple[str, ...]) -> dict[str, list[str]]:
    """``{phase: [engine[:model], ...]}`` in the order given."""
    chains: dict[str, list[str]] = {}
    for value in fallbacks:
        phase, sep, entry = value.partition("=")
        if not sep or not entry:
            raise CliError(USAGE, f"--fallback: expected PHASE=ENGINE[:MODEL], got {value!r}")
        if phase not in PHASES:
            raise CliError(USAGE, f"--fallback: unknown phase {phase!r} (one of {', '.join(PHASES)})")
        chains.setdefault(phase, []).append(entry)
    return chains


def engines_body(engine: str | None, engines_for: tuple[str, ...], models: tuple[str, ...]) -> dict[str, Any]:
    """``default_engines``/``default_models`` of a project body from the options (only what was given)."""
    body: dict[str, Any] = {}
    chosen = dict.fromkeys(PHASES, engine) if engine else {}
    for phase, value in _pairs(engines_for, "--engine-for").items():
        if value not in ENGINES:
            raise CliError(
                USAGE, f"--engine-for {phase}: unknown engine {value!r} (one of {', '.join(ENGINES)})"
            )
        chosen[phase] = value
    if chosen:
        body["default_engines"] = chosen
    if models:
        body["default_models"] = _pairs(models, "--model")
    return body


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        phase, sep, what = value.partition("=")
        if not sep or not what:
            raise CliError(USAGE, f"{option}: expected PHASE=VALUE, got {value!r}")
        if phase not in PHASES:
            raise CliError(USAGE, f"{option}: unknown phase {phase!r} (one of {', '.join(PHASES)})")
        pairs[phase] = what
    return pairs


def run_policy_options(func: F) -> F:
    options = (
        click.option("--required-approvals", type=click.IntRange(0, 10), help="Approvals needed to merge."),
        click.option(
            "--required-check",
            "required_checks",
            multiple=True,
            help="A CI check that must pass (repeatable).",
        ),
        click.option("--merge-method", type=click.Choice(["merge", "squash", "rebase"])),
        click.option(
            "--merge",
            "merge_mode",
            type=click.Choice(["never", "when_green"]),
            help="when_green: merge once QA passed and CI is green.",
        ),
        click.option("--reviewer", "reviewers", multiple=True, help="Asked to review the PR (repeatable)."),
        click.option("--ready-when-done/--no-ready-when-done", default=None),
        click.option("--pr-open", type=click.Choice(["after_first_push", "when_done", "never"])),
        click.option("--review-fix-attempts", type=click.IntRange(0, 10)),
        click.option(
            "--max-parallel-steps",
            type=click.IntRange(1, 8),
            help="Autopilot: steps of one parallel group (spec-kit [P] tasks) executing at once.",
        ),
        click.option("--qa-after-execution/--no-qa-after-execution", default=None),
        click.option("--plan-approval", type=click.Choice(["auto", "required"])),
        click.option(
            "--mode",
            type=click.Choice(["autopilot", "manual"]),
            help="autopilot: one start runs it to a PR; manual: you ask for every step.",
        ),
    )
    for option in options:
        func = option(func)
    return func


def run_policy_body(options: dict[str, Any]) -> dict[str, Any]:
    """A run policy body from ``run_policy_options``' values (only what was given)."""
    top = {
        k: options[k]
        for k in ("mode", "plan_approval", "qa_after_execution", "review_fix_attempts", "max_parallel_steps")
        if options.get(k) is not None
    }
    pr = {
        k: v
        for k, v in (
            ("open", options.get("pr_open")),
            ("ready_when_done", options.get("ready_when_done")),
            ("reviewers", list(options.get("reviewers") or ()) or None),
        )
        if v is not None
    }
    merge = {
        k: v
        for k, v in (
            ("mode", options.get("merge_mode")),
            ("method", options.get("merge_method")),
            ("required_checks", list(options.get("required_checks") or ()) or None),
            ("required_approvals", options.get("required_approvals")),
        )
        if v is not None
    }
    return {**top, **({"pr": pr} if pr else {}), **({"merge": merge} if merge else {})}


POLICY_KEYS = (
    "mode",
    "plan_approval",
    "qa_after_execution",
    "review_fix_attempts",
    "max_parallel_steps",
    "pr_open",
    "ready_when_done",
    "reviewers",
    "merge_mode",
    "merge_method",
    "required_checks",
    "required_approvals",
)

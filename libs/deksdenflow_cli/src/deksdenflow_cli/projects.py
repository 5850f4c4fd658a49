"""``project …``: create (with onboarding), list, get, answer clarifications, tokens, webhook secret,
CI policy and run policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from deksdenflow_cli import follow, names
from deksdenflow_cli.exits import FAILED, USAGE, CliError
from deksdenflow_cli.output import render
from deksdenflow_cli.policy import (
    engine_options,
    engines_body,
    fallback_option,
    fallbacks_body,
    run_policy_body,
    run_policy_options,
)
from deksdenflow_cli.root import cli, note, output_options, state
from deksdenflow_cli.why import why

PROJECT_COLUMNS = ("id", "name", "status", "why", "git_url", "base_branch", "created_at")


def show_project(project: dict[str, Any], output: str, fields: tuple[str, ...]) -> None:
    columns = (*PROJECT_COLUMNS, "last_error", "fallbacks", "questions", "answers")
    render(project, output, columns=columns, fields=fields)
    unanswered = [q for q in project.get("questions", []) if q.get("key") not in project.get("answers", {})]
    if output == "table" and not fields and unanswered:
        note("questions waiting for an answer (deksdenflow project answer NAME key=value):")
        for q in unanswered:
            note(f"  {q.get('key')}: {q.get('question', '')}")


@cli.group()
def project() -> None:
    """Projects: repositories deksdenflow works on."""


@project.command("create")
@click.argument("name")
@click.option(
    "--git-url",
    required=True,
    help="Where the repository is (https://, ssh, file://, or a local path, made absolute).",
)
@click.option("--base-branch", default="main", show_default=True)
@click.option("--local-path", help="An existing local clone to use.")
@click.option("--forge-repo", help="owner/name on the forge, when it cannot be read off the git URL.")
@click.option("--ci-provider", type=click.Choice(["github", "gitlab"]))
@click.option("--onboard/--no-onboard", default=True, show_default=True, help="Onboard it at once.")
@engine_options
@fallback_option
@run_policy_options
@output_options
def project_create(
    name: str,
    git_url: str,
    base_branch: str,
    local_path: str | None,
    forge_repo: str | None,
    ci_provider: str | None,
    onboard: bool,
    engine: str | None,
    engines_for: tuple[str, ...],
    models: tuple[str, ...],
    fallbacks: tuple[str, ...],
    output: str,
    fields: tuple[str, ...],
    **policy: Any,
) -> None:
    """Register a project; prints its project token once (keep it). Engines and models per phase and the
    run policy may be given here (see `project run-policy set`)."""
    local = Path(git_url).expanduser()
    if "://" not in git_url and local.exists():  # a path here: the workers need it whole
        git_url = str(local.resolve())
    body: dict[str, Any] = {"name": name, "git_url": git_url, "base_branch": base_branch, "onboard": onboard}
    for key, value in (("local_path", local_path), ("forge_repo", forge_repo), ("ci_provider", ci_provider)):
        if value is not None:
            body[key] = value
    body.update(engines_body(engine, engines_for, models))
    if fallbacks:
        body["fallbacks"] = fallbacks_body(fallbacks)
    run_policy_ = run_policy_body(policy)
    if run_policy_:
        body["run_policy"] = run_policy_
    created = state().client.call("project.create", body=body)
    render(created, output, columns=(*PROJECT_COLUMNS, "token_id", "project_token"), fields=fields)


@project.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@output_options
def project_list(limit: int, offset: int, output: str, fields: tuple[str, ...]) -> None:
    """Projects, oldest first."""
    page = state().client.call("project.list", params={"limit": limit, "offset": offset})
    render(page["data"], output, columns=PROJECT_COLUMNS, fields=fields, many=True)


@project.command("get")
@click.argument("project_ref", metavar="PROJECT")
@output_options
def project_get(project_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """One project, by name or id (its open clarification questions listed)."""
    show_project(names.project(state().client, project_ref), output, fields)


# Where onboarding ends: ready (0), or stopped for a person (1: questions to answer, or it failed).
_ONBOARDED = frozenset({"ready", "blocked", "onboarding_failed"})


@project.command("wait")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds (exit 124 after).")
@output_options
def project_wait(project_ref: str, timeout: float | None, output: str, fields: tuple[str, ...]) -> None:
    """Block until the project's onboarding ends: exit 0 when it is ready, 1 when it is blocked on
    questions or failed (why on stderr). A retry is shown as it happens."""
    client = state().client
    pid = names.project_id(client, project_ref)
    shown: dict[str, Any] = {}

    def fetch() -> dict[str, Any]:
        project: dict[str, Any] = client.call("project.get", project_id=pid)
        retry = project.get("retry")
        if retry and retry != shown.get("retry"):
            note(f"{project['name']}: {why(project)}")
        shown["retry"] = retry
        return project

    note(f"waiting for project {pid} to be onboarded" + (f" (at most {timeout:g} s)" if timeout else ""))
    project = follow.follow_resource(
        client,
        {"project_id": pid},
        fetch,
        on_event=lambda _event: None,
        done=lambda p: p["status"] in _ONBOARDED,
        timeout=timeout,
        what="project",
    )
    show_project(project, output, fields)
    if project["status"] != "ready":
        reason = why(project)
        raise CliError(FAILED, f"the project is {project['status']}" + (f": {reason}" if reason else ""))


@project.command("onboard")
@click.argument("project_ref", metavar="PROJECT")
@output_options
def project_onboard(project_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """(Re-)onboard: check the remote, add starter assets, ask the clarification questions."""
    client = state().client
    show_project(
        client.call("project.onboard", project_id=names.project_id(client, project_ref)), output, fields
    )


@project.command("answer")
@click.argument("project_ref", metavar="PROJECT")
@click.argument("answers", nargs=-1, required=True, metavar="KEY=VALUE...")
@output_options
def project_answer(project_ref: str, answers: tuple[str, ...], output: str, fields: tuple[str, ...]) -> None:
    """Answer clarification questions by key."""
    parsed: dict[str, str] = {}
    for answer in answers:
        key, sep, value = answer.partition("=")
        if not sep:
            raise CliError(USAGE, f"expected KEY=VALUE, got {answer!r}")
        parsed[key] = value
    client = state().client
    pid = names.project_id(client, project_ref)
    show_project(client.call("project.answer", project_id=pid, body={"answers": parsed}), output, fields)


@project.group("token")
def project_token() -> None:
    """Project tokens (admin only)."""


@project_token.command("create")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--label", default="", help="What the token is for.")
@output_options
def token_create(project_ref: str, label: str, output: str, fields: tuple[str, ...]) -> None:
    """Issue a project token (printed this once)."""
    client = state().client
    pid = names.project_id(client, project_ref)
    created = client.call("project.token.create", project_id=pid, body={"label": label})
    render(created, output, columns=("token_id", "label", "project_token"), fields=fields)


@project_token.command("revoke")
@click.argument("project_ref", metavar="PROJECT")
@click.argument("token_id")
def token_revoke(project_ref: str, token_id: str) -> None:
    """Revoke a project token."""
    client = state().client
    client.call("project.token.revoke", project_id=names.project_id(client, project_ref), token_id=token_id)
    note(f"token {token_id} revoked")


@project.command("webhook-secret")
@click.argument("project_ref", metavar="PROJECT")
@output_options
def webhook_secret(project_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """Issue the project's webhook secret (printed this once; the previous one stops working)."""
    client = state().client
    created = client.call("project.webhook_secret", project_id=names.project_id(client, project_ref))
    render(created, output, columns=("project_id", "generation", "webhook_secret"), fields=fields)


@project.group("ci-policy")
def ci_policy() -> None:
    """How the project reacts to CI."""


@ci_policy.command("set")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--auto-qa-on-success/--no-auto-qa-on-success", default=None)
@click.option("--fix-attempts", type=click.IntRange(0))
@output_options
def ci_policy_set(
    project_ref: str,
    auto_qa_on_success: bool | None,
    fix_attempts: int | None,
    output: str,
    fields: tuple[str, ...],
) -> None:
    """Set the CI policy (unset options take the defaults)."""
    body = {
        k: v
        for k, v in (("auto_qa_on_success", auto_qa_on_success), ("fix_attempts", fix_attempts))
        if v is not None
    }
    client = state().client
    pid = names.project_id(client, project_ref)
    show_project(client.call("project.ci_policy", project_id=pid, body=body), output, fields)


@project.group("run-policy")
def run_policy() -> None:
    """How the project's protocols advance."""


@run_policy.command("set")
@click.argument("project_ref", metavar="PROJECT")
@run_policy_options
@output_options
def run_policy_set(project_ref: str, output: str, fields: tuple[str, ...], **policy: Any) -> None:
    """Replace the run policy (unset options take the defaults); new protocols follow it."""
    client = state().client
    pid = names.project_id(client, project_ref)
    body = run_policy_body(policy)
    show_project(client.call("project.run_policy", project_id=pid, body=body), output, fields)


@project.group("fallbacks")
def fallbacks_group() -> None:
    """The engines and models a phase falls back to when its own is limited or down."""


@fallbacks_group.command("set")
@click.argument("project_ref", metavar="PROJECT")
@fallback_option
@output_options
def fallbacks_set(project_ref: str, fallbacks: tuple[str, ...], output: str, fields: tuple[str, ...]) -> None:
    """Replace the project's fallback chains (none given: the worker's apply)."""
    client = state().client
    pid = names.project_id(client, project_ref)
    project = client.call("project.fallbacks", project_id=pid, body=fallbacks_body(fallbacks))
    show_project(project, output, fields)

"""The protocol run a webhook delivery applies to, and the projects whose secret may sign it.

A run named by id is looked up in the log itself, so a delivery is never recorded as matching nothing
(and then deduplicated for good) only because the read model is behind; one named by its branch is found
in the read model (the log has no index by name)."""

from __future__ import annotations

from deksdenflow_core.aggregates import PROTOCOL_RUN
from deksdenflow_core.domain.git_url import GitUrl
from deksdenflow_core.errors import ContractError

from deksdenflow_api.context import ApiContext
from deksdenflow_api.reads import T, fetch_all
from deksdenflow_api.webhooks.signal import Match, WebhookSignal

__all__ = ["match_run"]


async def match_run(ctx: ApiContext, signal: WebhookSignal | None) -> Match:
    """The run: the explicit ``protocol_run_id``, else the protocol whose name is the branch (narrowed to
    the repository's project when several projects have one of that name)."""
    if signal is None:
        return Match("", "", "", ())
    if signal.protocol_run_id:
        project_id = await _project_of_run(ctx, signal.protocol_run_id)
        if not project_id:
            return Match("", "", f"no protocol run {signal.protocol_run_id}", await _projects_of(ctx, signal))
        return Match(signal.protocol_run_id, project_id, "", (project_id,))
    projects = await _projects_of(ctx, signal)
    if signal.ignored_reason:
        return Match("", projects[0] if len(projects) == 1 else "", signal.ignored_reason, projects)
    if not signal.branch:
        return Match("", "", "the payload names no branch", projects)
    rows = await fetch_all(
        ctx, f"SELECT id, project_id FROM {T}.protocol_runs WHERE protocol_name = $1", signal.branch
    )
    if len(rows) > 1 and projects:
        rows = [r for r in rows if r["project_id"] in projects] or rows
    if len(rows) == 1:
        # Only the owner of the matched run may sign for it: the repository the payload names is the
        # sender's word, so a project's secret naming its own repository and another's branch is refused.
        project_id = rows[0]["project_id"]
        return Match(rows[0]["id"], project_id, "", (project_id,))
    if not rows:
        reason = f"no protocol run is named {signal.branch!r}"
        return Match("", projects[0] if len(projects) == 1 else "", reason, projects)
    reason = (
        f"{len(rows)} protocol runs in different projects are named {signal.branch!r}; send protocol_run_id "
        "or the repository"
    )
    return Match("", "", reason, tuple(dict.fromkeys(r["project_id"] for r in rows)))


async def _project_of_run(ctx: ApiContext, protocol_run_id: str) -> str:
    """The project of the run with this id, from the log ('' if there is no such run)."""
    try:
        run = (await (await ctx.repo()).load(PROTOCOL_RUN, protocol_run_id)).state
    except ContractError:  # not even a possible id
        return ""
    return run.project_id if run.version else ""


async def _projects_of(ctx: ApiContext, signal: WebhookSignal) -> tuple[str, ...]:
    """Projects whose repository is the payload's (by forge path or URL)."""
    wanted = {_repo_key(signal.repository)} | {_repo_key(u) for u in signal.repository_urls}
    wanted.discard("")
    if not wanted:
        return ()
    rows = await fetch_all(ctx, f"SELECT id, git_url, state->>'forge_repo' AS forge_repo FROM {T}.projects")
    return tuple(
        r["id"] for r in rows if {_repo_key(r["git_url"]), _repo_key(r["forge_repo"] or "")} & wanted
    )


def _repo_key(url_or_path: str) -> str:
    """``https://github.com/Acme/Demo.git``, ``git@github.com:acme/demo``, ``acme/demo`` → ``acme/demo``."""
    url = GitUrl.parse(url_or_path)
    if not url.text:
        return ""
    if url.form == "url" or (url.form == "scp" and url.user is not None):
        return url.repo_path.lower()
    return url.text.strip("/").removesuffix(".git").lower()

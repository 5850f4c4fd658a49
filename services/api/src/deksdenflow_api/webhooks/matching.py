"""The protocol run a webhook delivery applies to, found in the read model, and the projects whose secret
may sign it."""

from __future__ import annotations

from deksdenflow_core.domain.git_url import GitUrl

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
        rows = await fetch_all(
            ctx, f"SELECT id, project_id FROM {T}.protocol_runs WHERE id = $1", signal.protocol_run_id
        )
        if not rows:
            return Match("", "", f"no protocol run {signal.protocol_run_id}", await _projects_of(ctx, signal))
        return Match(rows[0]["id"], rows[0]["project_id"], "", (rows[0]["project_id"],))
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

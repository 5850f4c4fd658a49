"""The forge reconciliation: CI and PR/MR states GitHub and GitLab never told us about.

GitHub does not redeliver a webhook that failed, and a CI callback may never run. In each scheduler round
(``scheduler.py``) this sweep asks the forge of each project whose token this worker holds:

* for each step waiting on CI (needs_qa, or running after CI started; a commit; not executing), and
  each autopilot run waiting for green CI on its head commit to merge (``waiting_for = 'ci'``) — the
  commit's combined CI state; a finished one is reported as a CI result (``reconcile/<sha>/<state>`` as
  its delivery id, so each is taken once);
* for each run with an open PR/MR — whether it was merged or closed.

A run is only looked at once it has not changed for ``reconcile_min_age_seconds`` (webhooks come first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiStatus
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState, RunStatus, StepStatus
from deksdenflow_core.domain.provider import ci_provider
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.readmodel.tables import PROTOCOL_RUNS, STEP_RUNS
from deksdenflow_git.forges import Forge, ForgeError, ForgeUnavailable

from deksdenflow_git_ci_worker.jobs.ci import CiHandler, ForgeFactory
from deksdenflow_git_ci_worker.scheduler import Round, record_on_run
from deksdenflow_git_ci_worker.settings import GitCiSettings

_RUNS = f'"{SCHEMA}".{PROTOCOL_RUNS.name}'
_STEPS = f'"{SCHEMA}".{STEP_RUNS.name}'
# Runs and steps whose CI may have finished without telling us.
_CI_RUN_STATUSES = [s.value for s in (RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.BLOCKED)]
_CI_STEP_STATUSES = [s.value for s in (StepStatus.NEEDS_QA, StepStatus.RUNNING)]
_STATUS = {"success": CiStatus.SUCCESS, "failure": CiStatus.FAILURE}
_Answer = TypeVar("_Answer")
_Arg = TypeVar("_Arg")


class ForgeReconciler:
    """The forge sweep of a scheduler round: CI first, then PRs/MRs."""

    def __init__(self, repo: Repository, settings: GitCiSettings, ci: CiHandler, forge: ForgeFactory) -> None:
        self.repo = repo
        self.settings = settings
        self.ci = ci
        self.forge = forge

    async def sweep(self, conn: asyncpg.Connection, done: Round) -> None:
        await self._ci(conn, done)
        await self._prs(conn, done)

    # --- CI ------------------------------------------------------------------------------------------

    async def _ci(self, conn: asyncpg.Connection, done: Round) -> None:
        rows = await conn.fetch(
            f"""SELECT DISTINCT s.protocol_run_id AS run_id, s.commit_sha
                FROM {_STEPS} s JOIN {_RUNS} r ON r.id = s.protocol_run_id
                WHERE r.status = ANY($2::text[])
                  AND s.status = ANY($3::text[]) AND NOT s.executing AND s.commit_sha IS NOT NULL
                  AND r.updated_at < now() - make_interval(secs => $1)
                UNION
                SELECT r.id AS run_id, r.branch_head_sha AS commit_sha FROM {_RUNS} r
                WHERE r.waiting_for = 'ci' AND r.branch_head_sha IS NOT NULL
                  AND r.updated_at < now() - make_interval(secs => $1)""",
            self.settings.reconcile_min_age_seconds,
            _CI_RUN_STATUSES,
            _CI_STEP_STATUSES,
        )
        for row in rows:
            run = (await self.repo.load(PROTOCOL_RUN, row["run_id"])).state
            step = run.step_by_commit(row["commit_sha"])
            if step is None or step.executing or run.is_terminal:
                continue
            asked = await self._ask_forge(run, "CI", lambda f, sha: f.ci_status(sha), step.commit_sha, done)
            if asked is None:
                continue
            done.ci_checked += 1
            project, provider, ci = asked
            if ci is None:
                continue
            status = _STATUS.get(ci.state)
            if status is None:
                continue
            policy = self.ci.policy(project)
            report = cmd.RecordCiReport(
                provider=ci_provider(provider),
                status=status,
                raw_status=ci.raw_state,
                head_sha=step.commit_sha,
                run_url=ci.url,
                delivery_id=f"reconcile/{step.commit_sha}/{ci.state}",
                auto_qa=policy.auto_qa_on_success,
                fix_attempts=policy.fix_attempts,
            )
            if await self._record(run.protocol_run_id, report, done):
                done.ci_reported += 1

    async def _ask_forge(
        self,
        run: ProtocolRunState,
        what: str,
        ask: Callable[[Forge, _Arg], Awaitable[_Answer]],
        arg: _Arg,
        done: Round,
    ) -> tuple[ProjectState, str, _Answer | None] | None:
        """``ask(forge, arg)`` of the forge of ``run``'s project: the project, its provider and the answer
        (None if the forge failed: recorded in ``done.errors`` under ``what``). None if this worker holds
        no token for that forge."""
        project = (await self.repo.load(PROJECT, run.project_id)).state
        provider = self.ci.provider_of(project)
        if provider is None or not self.settings.token(provider):
            return None
        forge = self.forge(provider, project)
        try:
            return project, provider, await ask(forge, arg)
        except (ForgeError, ForgeUnavailable) as exc:
            done.errors.append(f"{what} of {run.protocol_name}: {exc.message}")
            return project, provider, None
        finally:
            await forge.aclose()

    # --- pull requests -------------------------------------------------------------------------------

    async def _prs(self, conn: asyncpg.Connection, done: Round) -> None:
        rows = await conn.fetch(
            f"""SELECT id FROM {_RUNS}
                WHERE pr_number IS NOT NULL AND NOT pr_merged AND status <> $2
                  AND NOT coalesce((state->>'pr_closed')::boolean, false)
                  AND updated_at < now() - make_interval(secs => $1)""",
            self.settings.reconcile_min_age_seconds,
            RunStatus.CANCELLED.value,
        )
        for row in rows:
            run = (await self.repo.load(PROTOCOL_RUN, row["id"])).state
            if not run.pr_number or run.pr_merged or run.pr_closed:
                continue
            asked_pr = await self._ask_forge(
                run, "PR", lambda f, n: f.get_pull_request(n), run.pr_number, done
            )
            if asked_pr is None:
                continue
            done.prs_checked += 1
            pr = asked_pr[2]
            if pr is None:
                continue
            command: ProtocolRunCommand
            if pr.state == "merged":
                command = cmd.RecordPullRequestMerged(number=pr.number, url=pr.url)
            elif pr.state == "closed":
                command = cmd.RecordPullRequestClosed(number=pr.number, url=pr.url)
            else:
                continue
            if await self._record(run.protocol_run_id, command, done):
                done.prs_recorded += 1

    async def _record(self, run_id: str, command: ProtocolRunCommand, done: Round) -> bool:
        return await record_on_run(self.repo, self.settings.worker_id, run_id, command, done)

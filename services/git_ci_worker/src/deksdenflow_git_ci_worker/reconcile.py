"""The scheduler: what webhooks and lost messages would otherwise leave waiting for ever.

GitHub does not redeliver a webhook that failed, and a CI callback may never run. Every
``reconcile_interval_seconds`` one replica (a PostgreSQL advisory lock elects it per round) asks the forge:

* for each step waiting on CI (needs_qa, or running after CI started; a commit; not executing) — the
  commit's combined CI state; a finished one is reported as a CI result (``reconcile/<sha>/<state>`` as
  its delivery id, so each is taken once);
* for each run with an open PR/MR — whether it was merged or closed;
* for each run with work in flight that has not changed for ``requeue_after_seconds`` while every worker
  consumer is idle (nothing pending, nothing being worked on: no worker has the request, none will get
  it) — to ask for that work again (``requeue_lost_work``).

Candidates come from the read model; every decision is taken on the run folded from the log, through
``decide``, so a stale row costs a look, never a wrong transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiProvider, CiStatus
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState
from deksdenflow_core.errors import DeksdenflowError, DomainError
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_git.forges import Forge, ForgeError, ForgeUnavailable
from nats.js.errors import NotFoundError

from deksdenflow_git_ci_worker.ci import CiHandler, ForgeFactory
from deksdenflow_git_ci_worker.settings import GitCiSettings

log = structlog.get_logger("deksdenflow.git_ci_worker.reconcile")
SOURCE = "git-ci-worker/reconciler"
_LOCK = "deksdenflow-reconciler"
_T = f'"{SCHEMA}"'
_PROVIDERS = {"github": CiProvider.GITHUB, "gitlab": CiProvider.GITLAB}
_STATUS = {"success": CiStatus.SUCCESS, "failure": CiStatus.FAILURE}
_Answer = TypeVar("_Answer")
_Arg = TypeVar("_Arg")


@dataclass
class Round:
    """What one round did (for logs, metrics and tests)."""

    elected: bool = False
    ci_checked: int = 0
    ci_reported: int = 0
    prs_checked: int = 0
    prs_recorded: int = 0
    requeued: int = 0
    errors: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        repo: Repository,
        store: JetStreamEventStore,
        db_url: str,
        settings: GitCiSettings,
        ci: CiHandler,
        forge: ForgeFactory,
    ) -> None:
        self.repo = repo
        self.store = store
        self.db_url = db_url
        self.settings = settings
        self.ci = ci
        self.forge = forge
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        interval = self.settings.reconcile_interval_seconds
        while not self._stop.is_set():
            try:
                done = await self.round()
                if done.ci_reported or done.prs_recorded or done.requeued or done.errors:
                    log.info("reconciled", **{k: v for k, v in done.__dict__.items() if v})
            except Exception as exc:  # a bad round must not end the scheduler
                log.warning("reconciliation round failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def round(self) -> Round:
        done = Round()
        conn: asyncpg.Connection = await asyncpg.connect(self.db_url)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", _LOCK):
                return done  # another replica has this round
            done.elected = True
            try:
                await self._ci(conn, done)
                await self._prs(conn, done)
                await self._lost_work(conn, done)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _LOCK)
        finally:
            await conn.close()
        return done

    # --- CI ------------------------------------------------------------------------------------------

    async def _ci(self, conn: asyncpg.Connection, done: Round) -> None:
        rows = await conn.fetch(
            f"""SELECT DISTINCT s.protocol_run_id AS run_id, s.commit_sha
                FROM {_T}.step_runs s JOIN {_T}.protocol_runs r ON r.id = s.protocol_run_id
                WHERE r.status IN ('planned', 'running', 'blocked')
                  AND s.status IN ('needs_qa', 'running') AND NOT s.executing AND s.commit_sha IS NOT NULL
                  AND r.updated_at < now() - make_interval(secs => $1)""",
            self.settings.reconcile_min_age_seconds,
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
                provider=_PROVIDERS[provider],
                status=status,
                raw_status=ci.raw_state,
                head_sha=step.commit_sha,
                run_url=ci.url,
                delivery_id=f"reconcile/{step.commit_sha}/{ci.state}",
                auto_qa=policy.auto_qa_on_success,
                fix_attempts=policy.fix_attempts,
            )
            if await self._execute(run.protocol_run_id, report, done):
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
            f"""SELECT id FROM {_T}.protocol_runs
                WHERE pr_number IS NOT NULL AND NOT pr_merged AND status <> 'cancelled'
                  AND NOT coalesce((state->>'pr_closed')::boolean, false)
                  AND updated_at < now() - make_interval(secs => $1)""",
            self.settings.reconcile_min_age_seconds,
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
            if await self._execute(run.protocol_run_id, command, done):
                done.prs_recorded += 1

    # --- lost requests -------------------------------------------------------------------------------

    async def _lost_work(self, conn: asyncpg.Connection, done: Round) -> None:
        if not await self._workers_idle():
            return
        rows = await conn.fetch(
            f"""SELECT id FROM {_T}.protocol_runs
                WHERE status IN ('planning', 'planned', 'running', 'blocked')
                  AND updated_at < now() - make_interval(secs => $1)""",
            self.settings.requeue_after_seconds,
        )
        for row in rows:
            run = (await self.repo.load(PROTOCOL_RUN, row["id"])).state
            in_flight = (
                run.status.value == "planning"
                or run.pr_requested
                or any(s.executing or s.qa_pending or s.ci_fix_pending for s in run.steps)
            )
            if not in_flight:
                continue
            reason = f"no worker had this run's requests for {self.settings.requeue_after_seconds:.0f} s"
            if await self._execute(run.protocol_run_id, cmd.RequeueLostWork(reason=reason), done):
                done.requeued += 1

    async def _workers_idle(self) -> bool:
        """Every worker consumer exists and has nothing to deliver and nothing being worked on."""
        durables = [d for d in self.settings.requeue_consumers.split(",") if d]
        if not durables:
            return False
        js = self.store.jetstream()
        for durable in durables:
            try:
                info = await js.consumer_info(self.store.stream, durable)
            except NotFoundError:
                return False
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    async def _execute(self, run_id: str, command: ProtocolRunCommand, done: Round) -> bool:
        meta = AppendMeta(
            source=SOURCE,
            actor=f"worker:{self.settings.worker_id}",
            correlation_id=run_id,
            causation_id=f"reconcile/{run_id}/{uuid.uuid4().hex[:12]}",
        )
        try:
            outcome = await self.repo.execute(PROTOCOL_RUN, run_id, command, meta, redecide=3)
        except DomainError as exc:
            log.info("reconciliation not taken by the run", run=run_id, reason=exc.message)
            return False
        except DeksdenflowError as exc:
            done.errors.append(f"{run_id}: {exc.message}")
            return False
        return bool(outcome.appended.events)

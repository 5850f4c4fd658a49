"""The git/CI worker: onboarding, draft PRs/MRs and their bodies kept current, CI results and fixes,
reviews and the replies to them, branch deletion, the branch listing service and the scheduler's rounds.

Jobs come from one durable pull consumer shared by every replica; :attr:`GitCiWorker.routes` is its one
table from request event to job and to the job's failure record (the consumer's filter comes from it).
Each remote side effect is idempotent by lookup: an open PR for the branch is reused, a branch already
gone is reported as such, starter assets already on the onboarding branch are not added twice. Listing a
project's branches is a request/reply service (``Subjects.branches_service``, queue group), so the API
shows what the remote really has.
"""

from __future__ import annotations

import asyncio
from functools import partial

from deksdenflow_core.aggregates import Repository
from deksdenflow_core.consumer import ConsumerSpec, Delivery
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import webhook as wev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.provider import ProviderName
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.jobs import ConsumerPool, Dispatcher, RetryNotices, Route
from deksdenflow_core.settings import RunLimits
from deksdenflow_git import Git, MirrorCache
from deksdenflow_git.forges import Forge
from nats.aio.client import Client as NATS

from deksdenflow_git_ci_worker.admission import Admission
from deksdenflow_git_ci_worker.jobs.branches import Branches
from deksdenflow_git_ci_worker.jobs.ci import CiHandler, ForgeFactory
from deksdenflow_git_ci_worker.jobs.forge_reconciler import ForgeReconciler
from deksdenflow_git_ci_worker.jobs.onboarding import Onboarding
from deksdenflow_git_ci_worker.jobs.pr_body_sync import PrBodySync
from deksdenflow_git_ci_worker.jobs.pull_requests import Merges, PullRequests, ReadyForReview
from deksdenflow_git_ci_worker.jobs.reviews import ReviewReplies
from deksdenflow_git_ci_worker.kit import SOURCE, GitJobKit, provider_of
from deksdenflow_git_ci_worker.metrics import GitCiMetrics
from deksdenflow_git_ci_worker.requeue import LostWorkRequeue
from deksdenflow_git_ci_worker.scheduler import Scheduler
from deksdenflow_git_ci_worker.settings import GitCiSettings


class GitCiWorker:
    def __init__(
        self,
        store: JetStreamEventStore,
        nc: NATS,
        settings: GitCiSettings,
        mirrors: MirrorCache,
        git: Git,
        *,
        metrics: GitCiMetrics | None = None,
        db_url: str | None = None,
        limits: RunLimits | None = None,
    ) -> None:
        self.store = store
        self.nc = nc
        self.repo = Repository(store, cache_size=1_000)
        self.settings = settings
        self.mirrors = mirrors
        self.git = git
        self.metrics = metrics or GitCiMetrics()
        self.kit = GitJobKit(self.repo, settings, mirrors, git, self.metrics)
        self.ci = CiHandler(self.repo, settings, self._forge, provider_of)
        self.branches = Branches(self.kit)
        self.routes = self._routes()
        self._dispatcher = Dispatcher(
            self.routes,
            self.metrics,
            notices=RetryNotices(self.repo, source=SOURCE, worker_id=settings.worker_id),
            service="git_ci_worker",
        )
        # The scheduler reads the read model for its candidates; without a database it does not run.
        self.scheduler = (
            make_scheduler(self.repo, store, db_url, settings, self.ci, self._forge)
            if db_url and settings.reconcile_interval_seconds > 0
            else None
        )
        self._pool = ConsumerPool(
            store,
            self.spec(),
            concurrency=settings.git_ci_worker_concurrency,
            on_failure=self.on_failure,
            on_retry=self._dispatcher.on_retry,
        )
        # With run limits set, queued runs wait for this worker's admission (it reads the read model).
        limits = limits or RunLimits()
        self.admission = (
            Admission(
                self.repo,
                store,
                db_url,
                limits,
                durable=f"{settings.git_ci_worker_durable}_admission",
                worker_id=settings.worker_id,
            )
            if db_url and limits.limited
            else None
        )

    def _routes(self) -> list[Route]:
        onboarding, prs, meta = Onboarding(self.kit), PullRequests(self.kit), self.kit.meta
        ready, merges, replies = ReadyForReview(self.kit), Merges(self.kit), ReviewReplies(self.kit)
        # One route per request type (the dispatcher refuses two): the events it follows have no other job.
        bodies = PrBodySync(self.kit)
        return [
            Route(pev.ProjectOnboardingRequested, onboarding.run, onboarding.fail),
            Route(ev.PullRequestRequested, prs.run, prs.fail),
            Route(ev.PullRequestReadyRequested, ready.run, ready.fail),
            Route(ev.MergeRequested, merges.run, merges.fail),
            # A reply that cannot be posted is logged, not recorded: the review's fix is done either way.
            Route(ev.ReviewReplyRequested, replies.run),
            Route(ev.BranchDeletionRequested, self.branches.delete),
            Route(wev.WebhookReceived, partial(self.ci.apply_webhook, meta=meta)),
            Route(
                ev.CiFixRequested,
                partial(self.ci.fix_ci, meta=meta),
                partial(self.ci.fix_ci_without_log, meta=meta),
            ),
            *bodies.routes(),
        ]

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            durable=self.settings.git_ci_worker_durable,
            filter_subjects=self._dispatcher.filter_subjects(self.store.subjects),
            batch=1,
            max_deliver=6,
            backoff_seconds=(1.0, 5.0, 15.0, 60.0),
            ack_wait_seconds=self.settings.git_ci_worker_ack_wait_seconds,
        )

    @property
    def branches_subject(self) -> str:
        return self.store.subjects.branches_service

    async def run(self) -> None:
        sub = await self.nc.subscribe(
            self.branches_subject, queue="git_ci_worker", cb=self.branches.list_branches
        )
        diffs = await self.nc.subscribe(
            self.store.subjects.diffs_service, queue="git_ci_worker", cb=self.branches.diff
        )
        rounds = asyncio.create_task(self.scheduler.run()) if self.scheduler else None
        admitting = asyncio.create_task(self.admission.run()) if self.admission else None
        try:
            await self._pool.run(self.handle)
        finally:
            if self.admission is not None and admitting is not None:
                self.admission.stop()
                await admitting
            if self.scheduler is not None and rounds is not None:
                self.scheduler.stop()
                await rounds
            await sub.unsubscribe()
            await diffs.unsubscribe()

    def stop(self) -> None:
        self._pool.stop()
        if self.admission is not None:
            self.admission.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    async def handle(self, delivery: Delivery) -> None:
        await self._dispatcher.handle(delivery)

    async def on_failure(self, delivery: Delivery, exc: Exception) -> None:
        await self._dispatcher.on_failure(delivery, exc)

    def _forge(self, provider: ProviderName, project: ProjectState) -> Forge:
        return self.kit.forge(provider, project)


def make_scheduler(
    repo: Repository,
    store: JetStreamEventStore,
    db_url: str,
    settings: GitCiSettings,
    ci: CiHandler,
    forge: ForgeFactory,
) -> Scheduler:
    """The scheduler this process hosts: the forge reconciliation, then the lost-work requeue, in one
    elected round."""
    forges = ForgeReconciler(repo, settings, ci, forge)
    requeue = LostWorkRequeue(repo, store, settings)
    return Scheduler(db_url, settings.reconcile_interval_seconds, [forges.sweep, requeue.sweep])

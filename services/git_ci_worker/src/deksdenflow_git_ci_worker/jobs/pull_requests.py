"""Draft PRs/MRs: one per protocol branch on the project's forge, reused when one is already open, and
optionally a CI run triggered on the branch; marking them ready and merging them."""

from __future__ import annotations

from dataclasses import dataclass

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import MergeMethod
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.provider import ci_provider
from deksdenflow_core.errors import PermanentFailure, WorkNotCurrent
from deksdenflow_git.forges import ForgeError
from deksdenflow_git.forges.base import MergeMethod as ForgeMergeMethod

from deksdenflow_git_ci_worker.kit import GitJobKit, log, provider_of
from deksdenflow_git_ci_worker.pr_body import pr_body


@dataclass(frozen=True)
class PullRequests:
    """``protocol_run.pull_request_requested`` → ``RecordPullRequestOpened`` (or ``…Failed``)."""

    kit: GitJobKit

    async def run(self, delivery: Delivery, req: ev.PullRequestRequested) -> None:
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if not run.pr_requested or run.pr_attempt != req.attempt:
            raise WorkNotCurrent(f"PR attempt {req.attempt} of {run.protocol_run_id} is not current")
        project = (await kit.repo.load(PROJECT, run.project_id)).state
        provider = provider_of(project)
        if provider is None:
            raise PermanentFailure(
                "the project has no CI provider: register it with ci_provider github|gitlab or answer the "
                "ci_provider clarification"
            )
        heads = await kit.mirrors.remote_heads(project.project_id, project.git_url)
        if run.protocol_name not in heads:
            raise PermanentFailure(
                f"branch {run.protocol_name} is not on the remote yet: nothing to open a PR for"
            )
        forge = kit.forge(provider, project)
        try:
            pr = await forge.open_draft_pull_request(
                branch=run.protocol_name,
                base=run.base_branch or project.base_branch,
                title=f"WIP: {run.number:04d} - {run.slug}",
                body=pr_body(run, api_url=kit.settings.public_api_url),
            )
            if kit.settings.trigger_ci_on_pr:
                await forge.trigger_ci(ref=run.protocol_name, workflow=kit.settings.ci_workflow)
        except ForgeError:
            kit.metrics.prs.labels(provider, "error").inc()
            raise
        finally:
            await forge.aclose()
        kit.metrics.prs.labels(provider, "reused" if pr.reused else "opened").inc()
        await kit.record_run(
            run.protocol_run_id,
            [
                cmd.RecordPullRequestOpened(
                    attempt=req.attempt,
                    provider=ci_provider(provider),
                    number=pr.number,
                    url=pr.url,
                    reused=pr.reused,
                )
            ],
            delivery,
        )

    async def fail(self, delivery: Delivery, req: ev.PullRequestRequested, reason: str) -> None:
        await self.kit.record_run(
            delivery.event.envelope.aggregate_id,
            [cmd.RecordPullRequestFailed(attempt=req.attempt, reason=reason)],
            delivery,
        )


@dataclass(frozen=True)
class ReadyForReview:
    """``protocol_run.pr_ready_requested`` → the draft marked ready, its reviewers asked →
    ``RecordPullRequestMarkedReady`` (or ``…ReadyFailed``)."""

    kit: GitJobKit

    async def run(self, delivery: Delivery, req: ev.PullRequestReadyRequested) -> None:
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if not run.pr_ready_requested or run.pr_ready_attempt != req.attempt:
            raise WorkNotCurrent(f"ready attempt {req.attempt} of {run.protocol_run_id} is not current")
        forge, provider = await kit.pr_forge(run)
        asked: tuple[str, ...] = ()
        try:
            await forge.mark_ready(run.pr_number)
            if req.reviewers:
                try:
                    await forge.request_reviewers(run.pr_number, req.reviewers)
                    asked = tuple(req.reviewers)
                except ForgeError as exc:  # the PR is ready all the same; say who could not be asked
                    log.warning("reviewers not requested", reason=exc.message, pr=run.pr_url)
        except ForgeError:
            kit.metrics.prs.labels(provider, "error").inc()
            raise
        finally:
            await forge.aclose()
        kit.metrics.prs.labels(provider, "ready").inc()
        await kit.record_run(
            run.protocol_run_id,
            [cmd.RecordPullRequestMarkedReady(attempt=req.attempt, reviewers_requested=asked)],
            delivery,
        )

    async def fail(self, delivery: Delivery, req: ev.PullRequestReadyRequested, reason: str) -> None:
        await self.kit.record_run(
            delivery.event.envelope.aggregate_id,
            [cmd.RecordPullRequestReadyFailed(attempt=req.attempt, reason=reason)],
            delivery,
        )


_METHODS: dict[MergeMethod, ForgeMergeMethod] = {
    MergeMethod.UNSPECIFIED: "merge",
    MergeMethod.MERGE: "merge",
    MergeMethod.SQUASH: "squash",
    MergeMethod.REBASE: "rebase",
}


@dataclass(frozen=True)
class Merges:
    """``protocol_run.merge_requested`` → the PR/MR merged on the commit CI was green on →
    ``RecordPullRequestMerged``; on GitLab, when its pipeline has not finished, ``RecordMergeScheduled``
    ("merge when pipeline succeeds"); a refusal (not mergeable, the head moved, a conflict) →
    ``RecordMergeFailed`` at once: sending it again would be refused again."""

    kit: GitJobKit

    async def run(self, delivery: Delivery, req: ev.MergeRequested) -> None:
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if not run.merge_requested or run.merge_attempt != req.attempt:
            raise WorkNotCurrent(f"merge attempt {req.attempt} of {run.protocol_run_id} is not current")
        forge, provider = await kit.pr_forge(run)
        try:
            result = await forge.merge(
                run.pr_number,
                method=_METHODS.get(req.method, "merge"),
                sha=req.head_sha,
                when_pipeline_succeeds=provider == "gitlab",
            )
        except ForgeError as exc:
            kit.metrics.prs.labels(provider, "merge_refused").inc()
            await self.fail(delivery, req, exc.message)
            return
        finally:
            await forge.aclose()
        if result.merged:
            kit.metrics.prs.labels(provider, "merged").inc()
            command: cmd.RecordPullRequestMerged | cmd.RecordMergeScheduled = cmd.RecordPullRequestMerged(
                number=run.pr_number, url=result.url or run.pr_url, merge_commit_sha=result.merge_commit_sha
            )
        elif result.scheduled:
            kit.metrics.prs.labels(provider, "merge_scheduled").inc()
            command = cmd.RecordMergeScheduled(attempt=req.attempt)
        else:
            await self.fail(delivery, req, "the forge neither merged nor scheduled the merge")
            return
        await kit.record_run(run.protocol_run_id, [command], delivery)

    async def fail(self, delivery: Delivery, req: ev.MergeRequested, reason: str) -> None:
        await self.kit.record_run(
            delivery.event.envelope.aggregate_id,
            [cmd.RecordMergeFailed(attempt=req.attempt, reason=reason)],
            delivery,
        )

"""Draft PRs/MRs: one per protocol branch on the project's forge, reused when one is already open, and
optionally a CI run triggered on the branch."""

from __future__ import annotations

from dataclasses import dataclass

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.domain.provider import ci_provider
from deksdenflow_core.errors import PermanentFailure, WorkNotCurrent
from deksdenflow_git.forges import ForgeError

from deksdenflow_git_ci_worker.kit import GitJobKit, provider_of


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
                body=pr_body(run),
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


def pr_body(run: ProtocolRunState) -> str:
    return (
        f"Protocol **{run.protocol_name}** opened by deksdenflow.\n\n"
        f"Task: {run.task_name}\n\n"
        f"The plan, the context, the log and every step file are in "
        f"[`{run.protocol_root}/`]({run.protocol_root}/). This PR stays a draft while the protocol runs.\n"
    )

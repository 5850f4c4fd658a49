"""CI results into runs: webhook deliveries applied through ``decide``, and the evidence of CI fixes.

* ``webhook.received`` → the run's command (a CI report, a merge, a close, a review — see ``reviews.py``)
  with the project's CI policy, then ``webhook.processed`` with what came of it (applied, no effect,
  rejected by the run, ignored).
  A delivery ignored on receipt (no run matched it) is dropped.
  A GitHub success covers one workflow, check suite, check run or status context; when a forge token is
  configured it is confirmed against the commit's combined CI state first, so one green job among
  several does not pass the step.
* ``protocol_run.ci_fix_requested`` → the failing job's log excerpt and run URL from GitHub/GitLab, then
  ``request_ci_fix``, which asks the agent for a fix with that evidence. Without a token, or when the
  forge will not give the log, the fix is still requested, with the run URL and a note saying why the
  log is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, WEBHOOK, Repository
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import webhook as wcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    CiPolicy,
    CiProvider,
    CiStatus,
    WebhookOutcome,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import webhook as wev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState, RunStatus, StepStatus
from deksdenflow_core.domain.provider import ProviderName
from deksdenflow_core.errors import DomainError, NotFound, WorkNotCurrent
from deksdenflow_core.eventstore import AppendMeta
from deksdenflow_git.forges import Forge, ForgeError, ForgeUnavailable

from deksdenflow_git_ci_worker.jobs.reviews import ReviewDeliveries
from deksdenflow_git_ci_worker.settings import GitCiSettings

log = structlog.get_logger("deksdenflow.git_ci_worker.ci")

ForgeFactory = Callable[[ProviderName, ProjectState], Forge]
MetaFactory = Callable[[Delivery, str], AppendMeta]
# A log excerpt is evidence for a prompt, not an archive.
MAX_EXCERPT_CHARS = 12_000


@dataclass
class CiHandler:
    repo: Repository
    settings: GitCiSettings
    forge: ForgeFactory
    provider_of: Callable[[ProjectState], ProviderName | None]
    reviews: ReviewDeliveries = field(init=False)

    def __post_init__(self) -> None:
        self.reviews = ReviewDeliveries(self.forge, self.provider_of, lambda p: bool(self.settings.token(p)))

    def policy(self, project: ProjectState) -> CiPolicy:
        """The project's CI policy, else the worker's defaults."""
        if project.ci_policy is not None:
            return project.ci_policy
        return CiPolicy(
            auto_qa_on_success=self.settings.auto_qa_on_ci, fix_attempts=self.settings.ci_fix_attempts
        )

    # --- webhooks ------------------------------------------------------------------------------------

    async def apply_webhook(
        self, delivery: Delivery, received: wev.WebhookReceived, meta: MetaFactory
    ) -> None:
        if received.ignored_reason or not received.protocol_run_id:
            raise WorkNotCurrent(f"webhook ignored on receipt: {received.ignored_reason}")
        webhook_id = delivery.event.envelope.aggregate_id
        hook = (await self.repo.load(WEBHOOK, webhook_id)).state
        if hook.processed:
            raise WorkNotCurrent(f"webhook {webhook_id} is already processed")
        run_id = received.protocol_run_id
        outcome, detail, types = WebhookOutcome.IGNORED, "", []
        try:
            run = (await self.repo.load(PROTOCOL_RUN, run_id)).state
            project = (await self.repo.load(PROJECT, run.project_id)).state
            commands = await self._commands(received, run, project)
            if not commands:
                detail = f"{received.event} {received.action or received.raw_status} changes no run".strip()
            else:
                done = await self.repo.execute_many(
                    PROTOCOL_RUN, run_id, commands, meta(delivery, run_id), redecide=3
                )
                types = [e.envelope.type for e in done.appended.events]
                changed = [t for t in types if t != ev.CiReported.EVENT_TYPE]
                moved = _statuses(done.state) != _statuses(run)  # CI running moves a step by itself
                outcome = WebhookOutcome.APPLIED if changed or moved else WebhookOutcome.NO_EFFECT
                detail = ", ".join(types) if changed or moved else "recorded; the run was already there"
        except NotFound as exc:
            detail = exc.message
        except DomainError as exc:
            outcome, detail = WebhookOutcome.REJECTED, exc.message
        record = wcmd.RecordWebhookProcessed(
            protocol_run_id=run_id, outcome=outcome, detail=detail, event_types=tuple(types)
        )
        await self.repo.execute(WEBHOOK, webhook_id, record, meta(delivery, webhook_id), redecide=3)
        log.info("webhook applied", webhook_id=webhook_id, outcome=outcome.name, detail=detail)

    async def _commands(
        self, received: wev.WebhookReceived, run: ProtocolRunState, project: ProjectState
    ) -> list[ProtocolRunCommand]:
        if received.kind == "review":
            review = await self.reviews.command(received, run, project)
            return [review] if review is not None else []
        if received.kind == "pull_request":
            if received.pr_merged:
                return [
                    cmd.RecordPullRequestMerged(
                        number=received.pr_number,
                        url=received.pr_url,
                        merge_commit_sha=received.merge_commit_sha,
                    )
                ]
            if received.pr_closed:
                return [cmd.RecordPullRequestClosed(number=received.pr_number, url=received.pr_url)]
            return []
        if received.kind != "ci" or received.ci_status is CiStatus.UNSPECIFIED:
            return []
        raw = received.raw_status
        combined = CiStatus.UNSPECIFIED
        if received.ci_status is CiStatus.SUCCESS and received.provider is CiProvider.GITHUB:
            combined, raw = await self._confirm_success(project, received.head_sha, raw)
        policy = self.policy(project)
        return [
            cmd.RecordCiReport(
                provider=received.provider,
                status=received.ci_status,
                commit_status=combined,
                ci_run=received.ci_run,
                raw_status=raw,
                head_sha=received.head_sha,
                run_url=received.run_url,
                delivery_id=received.delivery_id,
                auto_qa=policy.auto_qa_on_success,
                fix_attempts=policy.fix_attempts,
            )
        ]

    async def _confirm_success(self, project: ProjectState, sha: str, raw: str) -> tuple[CiStatus, str]:
        """GitHub reports success per workflow/suite/check/context: ask for the commit's combined state
        (UNSPECIFIED when it could not be asked; the run then weighs the checks it has heard of)."""
        provider = self.provider_of(project)
        if provider != "github" or not self.settings.token("github") or not sha:
            return CiStatus.UNSPECIFIED, raw
        forge = self.forge(provider, project)
        try:
            combined = await forge.ci_status(sha)
        except (ForgeError, ForgeUnavailable) as exc:
            log.warning("CI success not confirmed; taken as reported", reason=exc.message)
            return CiStatus.UNSPECIFIED, raw
        finally:
            await forge.aclose()
        if combined.state == "running":
            return CiStatus.RUNNING, f"{raw} (other checks still running)"
        if combined.state == "failure":
            return CiStatus.FAILURE, combined.raw_state or "failure"
        return CiStatus.SUCCESS, raw

    # --- CI fixes ------------------------------------------------------------------------------------

    async def fix_ci(self, delivery: Delivery, req: ev.CiFixRequested, meta: MetaFactory) -> None:
        run, project = await self._current_fix(delivery, req)
        evidence = CiFailureEvidence(
            head_sha=req.head_sha, run_url=req.run_url, raw_status=req.raw_status, fix_attempt=req.fix_attempt
        )
        provider = self.provider_of(project)
        if provider is None:
            evidence = evidence.model_copy(
                update={"note": "the project has no forge: the log was not fetched"}
            )
        elif not self.settings.token(provider):
            note = f"no {provider} token is configured: the log was not fetched"
            evidence = evidence.model_copy(update={"note": note})
        else:
            evidence = await self._fetch_evidence(provider, project, evidence)
        await self._request_fix(run.protocol_run_id, evidence, req, delivery, meta)

    async def fix_ci_without_log(
        self, delivery: Delivery, req: ev.CiFixRequested, reason: str, meta: MetaFactory
    ) -> None:
        """The log could not be had (retries spent): the fix is still asked for, with what is known."""
        try:
            run, _ = await self._current_fix(delivery, req)
        except WorkNotCurrent:
            return
        evidence = CiFailureEvidence(
            head_sha=req.head_sha,
            run_url=req.run_url,
            raw_status=req.raw_status,
            fix_attempt=req.fix_attempt,
            note=f"the CI log could not be fetched: {reason}",
        )
        await self._request_fix(run.protocol_run_id, evidence, req, delivery, meta)

    async def _current_fix(
        self, delivery: Delivery, req: ev.CiFixRequested
    ) -> tuple[ProtocolRunState, ProjectState]:
        run = (await self.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        step = run.step(req.step_run_id)
        if step is None or step.ci_fix_request is None or step.ci_fix_request.fix_attempt != req.fix_attempt:
            raise WorkNotCurrent(f"CI fix {req.fix_attempt} of step {req.step_run_id} is no longer awaited")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        return run, project

    async def _fetch_evidence(
        self, provider: ProviderName, project: ProjectState, evidence: CiFailureEvidence
    ) -> CiFailureEvidence:
        forge = self.forge(provider, project)
        try:
            failure = await forge.ci_failure(evidence.head_sha, max_lines=self.settings.ci_log_lines)
        except ForgeError as exc:  # refused for good (auth, not found); ForgeUnavailable is retried
            return evidence.model_copy(update={"note": f"the forge refused the log: {exc.message}"})
        finally:
            await forge.aclose()
        if failure is None:
            return evidence.model_copy(update={"note": "the forge reports no failed job for this commit"})
        return evidence.model_copy(
            update={
                "run_url": failure.run_url or evidence.run_url,
                "job_name": failure.job_name,
                "log_excerpt": failure.log_excerpt[-MAX_EXCERPT_CHARS:],
            }
        )

    async def _request_fix(
        self,
        run_id: str,
        evidence: CiFailureEvidence,
        req: ev.CiFixRequested,
        delivery: Delivery,
        meta: MetaFactory,
    ) -> None:
        try:
            await self.repo.execute(
                PROTOCOL_RUN,
                run_id,
                cmd.RequestCiFix(step_run_id=req.step_run_id, evidence=evidence),
                meta(delivery, run_id),
                redecide=3,
            )
        except DomainError as exc:
            log.info("CI fix not taken by the run", reason=exc.message)


def _statuses(run: ProtocolRunState) -> tuple[RunStatus | StepStatus, ...]:
    return (run.status, *(st.status for st in run.steps))

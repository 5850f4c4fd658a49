"""What every job of the git/CI worker shares: recording its result on the project or the run (metadata
caused by the request), and the forge of a project (which provider, which API, which token)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.domain.git_url import GitUrl
from deksdenflow_core.domain.project import ProjectCommand, ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState
from deksdenflow_core.domain.provider import ProviderName, ci_provider, provider_name
from deksdenflow_core.errors import DomainError, PermanentFailure
from deksdenflow_core.eventstore import AppendMeta
from deksdenflow_core.jobs import result_meta
from deksdenflow_git import Git, MirrorCache
from deksdenflow_git.forges import Forge, make_forge

from deksdenflow_git_ci_worker.metrics import GitCiMetrics
from deksdenflow_git_ci_worker.settings import GitCiSettings

log = structlog.get_logger("deksdenflow.git_ci_worker")
SOURCE = "git-ci-worker"


@dataclass(frozen=True)
class GitJobKit:
    """The worker's connections and settings as its jobs use them."""

    repo: Repository
    settings: GitCiSettings
    mirrors: MirrorCache
    git: Git
    metrics: GitCiMetrics

    def meta(self, delivery: Delivery, aggregate_id: str) -> AppendMeta:
        """Metadata of an append answering ``delivery``'s request."""
        return result_meta(
            delivery, source=SOURCE, worker_id=self.settings.worker_id, aggregate_id=aggregate_id
        )

    async def record_run(self, run_id: str, commands: list[ProtocolRunCommand], delivery: Delivery) -> None:
        """The job's result on the run; a run that moved on and refuses it is logged, not retried."""
        try:
            await self.repo.execute_many(
                PROTOCOL_RUN, run_id, commands, self.meta(delivery, run_id), redecide=3
            )
        except DomainError as exc:
            log.info("result not taken by the run", reason=exc.message)

    async def record_project(
        self, project_id: str, commands: Sequence[ProjectCommand], delivery: Delivery
    ) -> None:
        """The job's result on the project; a refusal is logged, not retried."""
        try:
            await self.repo.execute_many(
                PROJECT, project_id, list(commands), self.meta(delivery, project_id), redecide=3
            )
        except DomainError as exc:
            log.info("result not taken by the project", reason=exc.message)

    def forge(self, provider: ProviderName, project: ProjectState) -> Forge:
        """A client of the project's forge (close it after use)."""
        api = self.settings.api_base(provider)
        url = project.git_url
        if project.forge_repo:
            url = f"https://{GitUrl.parse(api).host or 'forge'}/{project.forge_repo}"
        return make_forge(
            provider,
            url,
            token=self.settings.token(provider),
            api_base_url=api,
            token_name="DEKSDENFLOW_GITHUB_TOKEN" if provider == "github" else "DEKSDENFLOW_GITLAB_TOKEN",
        )

    async def pr_forge(self, run: ProtocolRunState) -> tuple[Forge, ProviderName]:
        """The forge of the run's project, for work on the run's PR/MR (close it after use)."""
        if not run.pr_number:
            raise PermanentFailure(f"protocol run {run.protocol_run_id} has no pull request")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        provider = provider_of(project)
        if provider is None:
            raise PermanentFailure("the project has no CI provider")
        return self.forge(provider, project), provider


def provider_of(project: ProjectState) -> ProviderName | None:
    """The project's forge: as registered, else as answered, else inferred from its URL."""
    registered = provider_name(project.ci_provider)
    if registered is not None:
        return registered
    answered = provider_name(ci_provider(project.answers.get("ci_provider", "").strip().lower()))
    return answered or infer_provider(project.git_url)


def infer_provider(git_url: str) -> ProviderName | None:
    """The forge a well-known host names (github.com, gitlab.com or gitlab.<domain>); None otherwise."""
    host = GitUrl.parse(git_url).host.lower()
    if host == "github.com":
        return "github"
    if host == "gitlab.com" or host.startswith("gitlab."):
        return "gitlab"
    return None

"""The git/CI worker: onboarding, draft PRs/MRs, CI triggers, branch deletion and the branch listing service.

Jobs come from one durable pull consumer over ``project.onboarding_requested``,
``protocol_run.pull_request_requested`` and ``protocol_run.branch_deletion_requested``, shared by every
replica. Each remote side effect is idempotent by lookup: an open PR for the branch is reused, a branch
already gone is reported as such, starter assets already on the onboarding branch are not added twice.
Listing a project's branches is a request/reply service (``<prefix>.svc.git.branches``, queue group), so
the API shows what the remote really has.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.assets import PROMPT_NAMES, SCHEMA_NAMES, prompt_text, schema_text
from deksdenflow_core.consumer import ConsumerSpec, Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    ClarificationQuestion,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import webhook as wev
from deksdenflow_core.domain.project import ProjectCommand, ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState
from deksdenflow_core.errors import DeksdenflowError, DomainError
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore
from deksdenflow_core.jobs import ConsumerPool, result_meta
from deksdenflow_git import Git, MirrorCache, redact
from deksdenflow_git.forges import Forge, ForgeError, make_forge
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Counter

from deksdenflow_git_ci_worker.ci import CiHandler, Stale
from deksdenflow_git_ci_worker.reconcile import Reconciler
from deksdenflow_git_ci_worker.settings import GitCiSettings

log = structlog.get_logger("deksdenflow.git_ci_worker")
SOURCE = "git-ci-worker"
ONBOARDING_BRANCH = "deksdenflow/onboarding"


class Skip(Exception):
    """The request is no longer current."""


class GitCiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "deksdenflow_worker_jobs_total",
            "Jobs by type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.prs = Counter(
            "deksdenflow_prs_total",
            "PRs/MRs by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )


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
    ) -> None:
        self.store = store
        self.nc = nc
        self.repo = Repository(store, cache_size=1_000)
        self.settings = settings
        self.mirrors = mirrors
        self.git = git
        self.metrics = metrics or GitCiMetrics()
        self.ci = CiHandler(self.repo, settings, self._forge, provider_of)
        # The scheduler reads the read model for its candidates; without a database it does not run.
        self.reconciler = (
            Reconciler(self.repo, store, db_url, settings, self.ci, self._forge)
            if db_url and settings.reconcile_interval_seconds > 0
            else None
        )
        self._pool = ConsumerPool(
            store, self.spec(), concurrency=settings.git_ci_worker_concurrency, on_failure=self.on_failure
        )

    def spec(self) -> ConsumerSpec:
        s = self.store.subjects
        return ConsumerSpec(
            durable=self.settings.git_ci_worker_durable,
            filter_subjects=[
                s.of_type(pev.ProjectOnboardingRequested.EVENT_TYPE),
                s.of_type(ev.PullRequestRequested.EVENT_TYPE),
                s.of_type(ev.BranchDeletionRequested.EVENT_TYPE),
                s.of_type(wev.WebhookReceived.EVENT_TYPE),
                s.of_type(ev.CiFixRequested.EVENT_TYPE),
            ],
            batch=1,
            max_deliver=6,
            backoff_seconds=(1.0, 5.0, 15.0, 60.0),
            ack_wait_seconds=self.settings.git_ci_worker_ack_wait_seconds,
        )

    @property
    def branches_subject(self) -> str:
        return self.store.subjects.branches_service

    async def run(self) -> None:
        sub = await self.nc.subscribe(self.branches_subject, queue="git_ci_worker", cb=self._branches)
        scheduler = asyncio.create_task(self.reconciler.run()) if self.reconciler else None
        try:
            await self._pool.run(self.handle)
        finally:
            if self.reconciler is not None and scheduler is not None:
                self.reconciler.stop()
                await scheduler
            await sub.unsubscribe()

    def stop(self) -> None:
        self._pool.stop()
        if self.reconciler is not None:
            self.reconciler.stop()

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.event.event
        kind = type(event).__name__
        outcome = "ok"
        try:
            if isinstance(event, pev.ProjectOnboardingRequested):
                await self._onboard(delivery, event)
            elif isinstance(event, ev.PullRequestRequested):
                await self._open_pr(delivery, event)
            elif isinstance(event, ev.BranchDeletionRequested):
                await self._delete_branch(delivery, event)
            elif isinstance(event, wev.WebhookReceived):
                if event.ignored_reason or not event.protocol_run_id:
                    raise Skip(f"webhook ignored on receipt: {event.ignored_reason}")
                await self.ci.apply_webhook(delivery, event, self._meta)
            elif isinstance(event, ev.CiFixRequested):
                await self.ci.fix_ci(delivery, event, self._meta)
        except (Skip, Stale) as exc:
            outcome = "skipped"
            log.info("job dropped", reason=str(exc), job=kind)
        except BaseException:
            outcome = "error"
            raise
        finally:
            self.metrics.jobs.labels(kind, outcome).inc()

    async def on_failure(self, delivery: Delivery, exc: Exception) -> None:
        event = delivery.event.event
        reason = exc.message if isinstance(exc, DeksdenflowError) else f"{type(exc).__name__}: {exc}"
        agg_id = delivery.event.envelope.aggregate_id
        if isinstance(event, pev.ProjectOnboardingRequested):
            await self._record_project(
                agg_id, [pcmd.RecordOnboardingFailed(attempt=event.attempt, reason=reason)], delivery
            )
        elif isinstance(event, ev.PullRequestRequested):
            await self._record_run(
                agg_id, [cmd.RecordPullRequestFailed(attempt=event.attempt, reason=reason)], delivery
            )
        elif isinstance(event, ev.CiFixRequested):
            await self.ci.fix_ci_without_log(delivery, event, reason, self._meta)

    # --- onboarding --------------------------------------------------------------------------------------

    async def _onboard(self, delivery: Delivery, req: pev.ProjectOnboardingRequested) -> None:
        project = (await self.repo.load(PROJECT, delivery.event.envelope.aggregate_id)).state
        if project.onboarding_attempt != req.attempt or project.status.value != "onboarding":
            raise Skip(f"onboarding attempt {req.attempt} of {project.project_id} is not current")
        await self.mirrors.sync(project.project_id, project.git_url)  # the remote is reachable and readable
        heads = await self.mirrors.remote_heads(project.project_id, project.git_url)
        if project.base_branch not in heads:
            # redacted: a clone URL may carry a token, and this reason goes into the log
            where = redact(project.git_url)
            raise _Permanent(f"the base branch {project.base_branch!r} does not exist on {where}")
        added = await self._starter_assets(project)
        local_path = await self._working_clone(project) if self.settings.auto_clone else project.local_path
        await self._record_project(
            project.project_id,
            [
                pcmd.RecordOnboardingCompleted(
                    attempt=req.attempt,
                    local_path=local_path,
                    assets_added=tuple(added),
                    questions=tuple(self._questions(project)),
                )
            ],
            delivery,
        )

    async def _starter_assets(self, project: ProjectState) -> list[str]:
        """Starter assets committed on the onboarding branch (pushed; review and merge it), never
        overwriting a file the project has."""
        async with self.mirrors.worktree(
            project.project_id,
            project.git_url,
            branch=ONBOARDING_BRANCH,
            base_branch=project.base_branch,
            job_id=f"onboard-{uuid.uuid4().hex[:8]}",
        ) as wt:
            added = [
                rel for rel, content, mode in starter_files() if _write_new(wt.path / rel, content, mode)
            ]
            if added:
                await wt.commit_all(
                    "chore(deksdenflow): add starter assets\n\n"
                    "Prompts, output schemas, CI scripts and CI files "
                    "for deksdenflow; existing files were left as they were.",
                    trailers={"Deksdenflow-Job": f"onboarding/{project.project_id}"},
                )
                await wt.push()
            return added

    async def _working_clone(self, project: ProjectState) -> str:
        """A working clone for people under ``<projects_root>/<host>/<path>`` (a cache: the remote stays
        the source of truth), with origin and the git identity set."""
        root = self.settings.projects_root or self.settings.home / "projects"
        target = (root / _clone_dir(project.git_url, project.project_id)).resolve()
        if not (target / ".git").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            await self.git.run("clone", "--quiet", project.git_url, str(target))
        else:
            await self.git.run("remote", "set-url", "origin", project.git_url, cwd=target)
            await self.git.run("fetch", "--quiet", "--prune", "origin", cwd=target)
        await self.git.run("config", "user.name", self.settings.git_user, cwd=target)
        await self.git.run("config", "user.email", self.settings.git_email, cwd=target)
        return str(target)

    def _questions(self, project: ProjectState) -> list[ClarificationQuestion]:
        provider_known = project.ci_provider is not CiProvider.UNSPECIFIED or _infer_provider(project.git_url)
        return [
            ClarificationQuestion(
                key="ci_provider",
                question="Which forge hosts this repository's PRs/MRs and CI?",
                options=("github", "gitlab", "none"),
                blocking=not provider_known,
            ),
            ClarificationQuestion(
                key="required_checks",
                question="Which CI checks must pass before a protocol's PR may be merged?",
                options=("lint", "typecheck", "test", "build"),
            ),
            ClarificationQuestion(
                key="pr_policy",
                question="Open a draft PR per protocol automatically, or only on request?",
                options=("on_request", "automatic"),
            ),
            ClarificationQuestion(
                key="secrets",
                question="Name the secret (env var) that holds the forge token if not the default.",
                options=("GITHUB_TOKEN", "GITLAB_TOKEN"),
            ),
        ]

    # --- pull requests -----------------------------------------------------------------------------------

    async def _open_pr(self, delivery: Delivery, req: ev.PullRequestRequested) -> None:
        run = (await self.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if not run.pr_requested or run.pr_attempt != req.attempt:
            raise Skip(f"PR attempt {req.attempt} of {run.protocol_run_id} is not current")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        provider = provider_of(project)
        if provider is None:
            raise _Permanent(
                "the project has no CI provider: register it with ci_provider github|gitlab or answer the "
                "ci_provider clarification"
            )
        heads = await self.mirrors.remote_heads(project.project_id, project.git_url)
        if run.protocol_name not in heads:
            raise _Permanent(f"branch {run.protocol_name} is not on the remote yet: nothing to open a PR for")
        forge = self._forge(provider, project)
        try:
            pr = await forge.open_draft_pull_request(
                branch=run.protocol_name,
                base=run.base_branch or project.base_branch,
                title=f"WIP: {run.number:04d} - {run.slug}",
                body=pr_body(run),
            )
            if self.settings.trigger_ci_on_pr:
                await forge.trigger_ci(ref=run.protocol_name, workflow=self.settings.ci_workflow)
        except ForgeError:
            self.metrics.prs.labels(provider, "error").inc()
            raise
        finally:
            await forge.aclose()
        self.metrics.prs.labels(provider, "reused" if pr.reused else "opened").inc()
        await self._record_run(
            run.protocol_run_id,
            [
                cmd.RecordPullRequestOpened(
                    attempt=req.attempt,
                    provider=CiProvider.GITHUB if provider == "github" else CiProvider.GITLAB,
                    number=pr.number,
                    url=pr.url,
                    reused=pr.reused,
                )
            ],
            delivery,
        )

    def _forge(self, provider: str, project: ProjectState) -> Forge:
        api = self.settings.api_base(provider)
        url = project.git_url
        if project.forge_repo:
            url = f"https://{urlsplit(api).hostname or 'forge'}/{project.forge_repo}"
        return make_forge(
            provider,
            url,
            token=self.settings.token(provider),
            api_base_url=api,
            token_name="DEKSDENFLOW_GITHUB_TOKEN" if provider == "github" else "DEKSDENFLOW_GITLAB_TOKEN",
        )

    # --- branches ----------------------------------------------------------------------------------------

    async def _delete_branch(self, delivery: Delivery, req: ev.BranchDeletionRequested) -> None:
        run = (await self.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if run.branch_deleted:
            raise Skip(f"branch {req.branch} is already deleted")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        existed = await self.mirrors.delete_remote_branch(project.project_id, project.git_url, req.branch)
        await self._record_run(
            run.protocol_run_id, [cmd.RecordBranchDeleted(branch=req.branch, existed=existed)], delivery
        )

    async def _branches(self, msg: Msg) -> None:
        """Reply with the remote's branches of a project: ``{"heads": {branch: sha}}`` or ``{"error"}``."""
        try:
            project_id = json.loads(msg.data)["project_id"]
            project = (await self.repo.load(PROJECT, project_id)).state
            if not project.exists:
                reply: dict[str, object] = {"error": f"project {project_id} does not exist"}
            else:
                reply = {"heads": await self.mirrors.remote_heads(project.project_id, project.git_url)}
        except Exception as exc:  # the caller must always get an answer
            reply = {"error": exc.message if isinstance(exc, DeksdenflowError) else repr(exc)}
        await msg.respond(json.dumps(reply).encode())

    # --- recording ---------------------------------------------------------------------------------------

    def _meta(self, delivery: Delivery, aggregate_id: str) -> AppendMeta:
        return result_meta(
            delivery, source=SOURCE, worker_id=self.settings.worker_id, aggregate_id=aggregate_id
        )

    async def _record_run(self, run_id: str, commands: list[ProtocolRunCommand], delivery: Delivery) -> None:
        try:
            await self.repo.execute_many(
                PROTOCOL_RUN, run_id, commands, self._meta(delivery, run_id), redecide=3
            )
        except DomainError as exc:
            log.info("result not taken by the run", reason=exc.message)

    async def _record_project(
        self, project_id: str, commands: Sequence[ProjectCommand], delivery: Delivery
    ) -> None:
        try:
            await self.repo.execute_many(
                PROJECT, project_id, list(commands), self._meta(delivery, project_id), redecide=3
            )
        except DomainError as exc:
            log.info("result not taken by the project", reason=exc.message)


class _Permanent(DeksdenflowError):
    """A job that cannot succeed by retrying (reported as a failure event at once)."""


def provider_of(project: ProjectState) -> str | None:
    if project.ci_provider is CiProvider.GITHUB:
        return "github"
    if project.ci_provider is CiProvider.GITLAB:
        return "gitlab"
    answered = project.answers.get("ci_provider", "").strip().lower()
    if answered in ("github", "gitlab"):
        return answered
    return _infer_provider(project.git_url)


def _infer_provider(git_url: str) -> str | None:
    scp_host = git_url.rsplit("@", maxsplit=1)[-1].split(":", maxsplit=1)[0]
    host = (urlsplit(git_url).hostname or scp_host).lower()
    if host == "github.com":
        return "github"
    if host == "gitlab.com" or host.startswith("gitlab."):
        return "gitlab"
    return None


def pr_body(run: ProtocolRunState) -> str:
    return (
        f"Protocol **{run.protocol_name}** opened by deksdenflow.\n\n"
        f"Task: {run.task_name}\n\n"
        f"The plan, the context, the log and every step file are in "
        f"[`{run.protocol_root}/`]({run.protocol_root}/). This PR stays a draft while the protocol runs.\n"
    )


def starter_files() -> list[tuple[str, str, int]]:
    """(relative path, content, mode) of every starter asset."""
    files = [(f".deksdenflow/prompts/{n}.md", prompt_text(n), 0o644) for n in PROMPT_NAMES]
    files += [(f".deksdenflow/schemas/{n}.schema.json", schema_text(n), 0o644) for n in SCHEMA_NAMES]
    root = resources.files("deksdenflow_git_ci_worker") / "starter"
    files += [
        (rel, item.read_text(), 0o755 if rel.endswith(".sh") else 0o644) for rel, item in _walk(root, "")
    ]
    return sorted(files)


def _walk(node: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    out: list[tuple[str, Traversable]] = []
    for child in node.iterdir():
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            out += _walk(child, rel + "/")
        elif child.name != "__init__.py":
            out.append((rel, child))
    return out


def _write_new(path: Path, content: str, mode: int) -> bool:
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    return True


def _clone_dir(git_url: str, project_id: str) -> Path:
    parts = urlsplit(git_url)
    if parts.scheme in ("http", "https", "ssh") and parts.hostname:
        path = parts.path.strip("/").removesuffix(".git")
        return Path(parts.hostname) / path
    if "@" in git_url and ":" in git_url and "://" not in git_url:  # git@host:owner/repo.git
        host, _, path = git_url.split("@", 1)[1].partition(":")
        return Path(host) / path.strip("/").removesuffix(".git")
    return Path("local") / project_id

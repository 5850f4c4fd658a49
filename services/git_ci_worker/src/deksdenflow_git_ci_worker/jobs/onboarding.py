"""Onboarding a project: check the remote and its base branch, commit the starter assets on the onboarding
branch (never overwriting a file the project has), make the working clone, ask the clarification
questions."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from deksdenflow_core.aggregates import PROJECT
from deksdenflow_core.assets import PROMPT_NAMES, SCHEMA_NAMES, prompt_text, schema_text
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    ClarificationQuestion,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.domain.git_url import GitUrl
from deksdenflow_core.domain.project import ProjectState, ProjectStatus
from deksdenflow_core.errors import PermanentFailure, WorkNotCurrent
from deksdenflow_git import redact

from deksdenflow_git_ci_worker.kit import GitJobKit, infer_provider

ONBOARDING_BRANCH = "deksdenflow/onboarding"


@dataclass(frozen=True)
class Onboarding:
    """``project.onboarding_requested`` → ``RecordOnboardingCompleted`` (or ``…Failed``)."""

    kit: GitJobKit

    async def run(self, delivery: Delivery, req: pev.ProjectOnboardingRequested) -> None:
        kit = self.kit
        project = (await kit.repo.load(PROJECT, delivery.event.envelope.aggregate_id)).state
        if project.onboarding_attempt != req.attempt or project.status is not ProjectStatus.ONBOARDING:
            raise WorkNotCurrent(f"onboarding attempt {req.attempt} of {project.project_id} is not current")
        await kit.mirrors.sync(project.project_id, project.git_url)  # the remote is reachable and readable
        heads = await kit.mirrors.remote_heads(project.project_id, project.git_url)
        if project.base_branch not in heads:
            # redacted: a clone URL may carry a token, and this reason goes into the log
            where = redact(project.git_url)
            raise PermanentFailure(f"the base branch {project.base_branch!r} does not exist on {where}")
        added = await self._starter_assets(project)
        local_path = await self._working_clone(project) if kit.settings.auto_clone else project.local_path
        await kit.record_project(
            project.project_id,
            [
                pcmd.RecordOnboardingCompleted(
                    attempt=req.attempt,
                    local_path=local_path,
                    assets_added=tuple(added),
                    questions=tuple(questions(project)),
                )
            ],
            delivery,
        )

    async def fail(self, delivery: Delivery, req: pev.ProjectOnboardingRequested, reason: str) -> None:
        await self.kit.record_project(
            delivery.event.envelope.aggregate_id,
            [pcmd.RecordOnboardingFailed(attempt=req.attempt, reason=reason)],
            delivery,
        )

    async def _starter_assets(self, project: ProjectState) -> list[str]:
        """Starter assets committed on the onboarding branch (pushed; review and merge it), never
        overwriting a file the project has."""
        async with self.kit.mirrors.worktree(
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
        settings, git = self.kit.settings, self.kit.git
        root = settings.projects_root or settings.home / "projects"
        target = (root / clone_dir(project.git_url, project.project_id)).resolve()
        if not target.is_relative_to(root.resolve()):  # a symlink under the root, say: never leave it
            raise PermanentFailure(f"the working clone of {project.project_id} would be outside {root}")
        if not (target / ".git").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            await git.run("clone", "--quiet", project.git_url, str(target))
        else:
            await git.run("remote", "set-url", "origin", project.git_url, cwd=target)
            await git.run("fetch", "--quiet", "--prune", "origin", cwd=target)
        await git.run("config", "user.name", settings.git_user, cwd=target)
        await git.run("config", "user.email", settings.git_email, cwd=target)
        return str(target)


def questions(project: ProjectState) -> list[ClarificationQuestion]:
    """The clarification questions of an onboarded project; the forge one blocks when it cannot be told."""
    provider_known = project.ci_provider is not CiProvider.UNSPECIFIED or infer_provider(project.git_url)
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


def clone_dir(git_url: str, project_id: str) -> Path:
    """Where under the projects root a repository's working clone goes: ``<host>/<path>``, made of the
    URL's own path segments only (``..`` and ``.`` are dropped: a URL must never reach outside the root,
    where an existing folder would be replaced); ``local/<project id>`` when the URL names no host."""
    url = GitUrl.parse(git_url)
    remote = (url.form == "url" and url.scheme in ("http", "https", "ssh")) or (
        url.form == "scp" and url.user is not None  # git@host:owner/repo.git
    )
    if not remote or not url.host:
        return Path("local") / project_id
    host, path = url.host, url.path
    segments = [s for s in path.removesuffix(".git").split("/") if s not in ("", ".", "..")]
    if not segments or host in ("", ".", "..") or "/" in host:
        return Path("local") / project_id
    return Path(host, *segments)

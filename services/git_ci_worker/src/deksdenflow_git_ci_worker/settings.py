"""Git/CI worker settings (``DEKSDENFLOW_*``; forge tokens also from ``GITHUB_TOKEN``/``GITLAB_TOKEN``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GitCiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEKSDENFLOW_", extra="ignore", frozen=True, populate_by_name=True
    )

    worker_id: str = Field(default_factory=lambda: f"git-ci-{socket.gethostname()}-{os.getpid()}")
    home: Path = Field(default=Path(".deksdenflow"), description="Caches: mirrors and worktrees.")
    projects_root: Path | None = Field(
        default=None,
        description="Where onboarding keeps a working clone of each project (<root>/<host>/<path>); "
        "default <home>/projects.",
    )
    auto_clone: bool = Field(
        default=True, description="Onboarding makes the working clone (DEKSDENFLOW_AUTO_CLONE)."
    )
    git_ci_worker_durable: str = Field(default="git_ci_worker", pattern=r"^[A-Za-z0-9_-]+$")
    git_ci_worker_concurrency: int = Field(default=2, ge=1, le=64)
    git_ci_worker_ack_wait_seconds: float = Field(default=60.0, gt=0)
    git_ci_worker_port: int = Field(default=8013, ge=0, le=65535, description="/health and /metrics (0: off)")
    git_ci_worker_host: str = "127.0.0.1"

    github_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("DEKSDENFLOW_GITHUB_TOKEN", "GITHUB_TOKEN")
    )
    gitlab_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("DEKSDENFLOW_GITLAB_TOKEN", "GITLAB_TOKEN")
    )
    github_token_file: Path | None = Field(
        default=None, description="A file holding the GitHub token (a mounted secret)."
    )
    gitlab_token_file: Path | None = Field(
        default=None, description="A file holding the GitLab token (a mounted secret)."
    )
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub REST base (GHES: https://host/api/v3)."
    )
    gitlab_url: str = Field(
        default="https://gitlab.com", description="GitLab base URL (self-hosted supported)."
    )
    trigger_ci_on_pr: bool = Field(
        default=False, description="Trigger CI (workflow_dispatch / pipeline) after opening a PR."
    )
    ci_workflow: str = Field(
        default="deksdenflow-ci.yml", description="GitHub workflow file dispatched by CI triggers."
    )
    public_api_url: str | None = Field(
        default=None,
        description="The API's base URL as people reach it (DEKSDENFLOW_PUBLIC_API_URL): PR/MR bodies link "
        "a step's QA reports there (GET /steps/{id}/qa) when its report is not a file on the branch; "
        "unset: no such link.",
    )
    auto_qa_on_ci: bool = Field(
        default=False,
        description="CI success requests QA instead of completing the step (DEKSDENFLOW_AUTO_QA_ON_CI), "
        "for projects without a CI policy of their own.",
    )
    ci_fix_attempts: int = Field(
        default=0,
        ge=0,
        le=10,
        description="CI fixes the agent may try per step (DEKSDENFLOW_CI_FIX_ATTEMPTS), for projects "
        "without a CI policy of their own; 0: a CI failure blocks the run.",
    )
    ci_log_lines: int = Field(
        default=80, ge=5, le=2000, description="Lines of the failing job's log given to a CI fix."
    )
    reconcile_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often the scheduler checks open PRs, the CI of steps waiting on it, and lost "
        "requests (0: off). It reads the read model (DEKSDENFLOW_DB_URL).",
    )
    reconcile_min_age_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A run is only reconciled once it has not changed for this long (webhooks come first).",
    )
    requeue_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Work requested this long ago, while no worker has it or will get it, is requeued.",
    )
    requeue_consumers: str = Field(
        default="codex_worker,git_ci_worker",
        pattern=r"^[A-Za-z0-9_,-]*$",
        description="Durable consumers that must all be idle before in-flight work counts as lost.",
    )
    git_user: str = "deksdenflow"
    git_email: str = "deksdenflow@localhost"

    def token(self, provider: str) -> str | None:
        """The forge token: the file if configured, else the variable; None means use the gh/glab CLI."""
        file, value = (
            (self.github_token_file, self.github_token)
            if provider == "github"
            else (self.gitlab_token_file, self.gitlab_token)
        )
        if file is not None:
            return file.read_text().strip() or None
        return value.get_secret_value() or None

    def api_base(self, provider: str) -> str:
        return self.github_api_url if provider == "github" else self.gitlab_url

"""Codex worker settings.

Names users know from the first version are kept (``DEKSDENFLOW_AUTO_QA_AFTER_EXEC``,
``DEKSDENFLOW_MAX_TOKENS_PER_STEP``, ``DEKSDENFLOW_TOKEN_BUDGET_MODE``, ``PROTOCOL_*_MODEL``, ...).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENGINE_IDS = ("codex", "claude-code", "scripted")


class WorkerSettings(BaseSettings):
    """How the codex worker runs agents, and the limits it keeps."""

    model_config = SettingsConfigDict(
        env_prefix="DEKSDENFLOW_", extra="ignore", frozen=True, populate_by_name=True
    )

    worker_id: str = Field(
        default_factory=lambda: f"codex-{socket.gethostname()}-{os.getpid()}",
        description="Recorded as the owner of the jobs this process takes (DEKSDENFLOW_WORKER_ID).",
    )
    home: Path = Field(default=Path(".deksdenflow"), description="Caches (mirrors, worktrees, CODEX_HOMEs).")
    codex_worker_durable: str = Field(default="codex_worker", pattern=r"^[A-Za-z0-9_-]+$")
    codex_worker_concurrency: int = Field(default=2, ge=1, le=64, description="Jobs run at once.")
    codex_worker_ack_wait_seconds: float = Field(
        default=60.0, gt=0, description="A job not heartbeated for this long is given to another replica."
    )
    codex_worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    codex_worker_port: int = Field(default=8012, ge=0, le=65535, description="/health and /metrics (0: off)")
    codex_worker_host: str = "127.0.0.1"
    codex_worker_watch_seconds: float = Field(
        default=0.5, gt=0, description="How often a running job checks that its run was not paused/cancelled."
    )
    codex_worker_max_deliver: int = Field(
        default=5, ge=1, le=100, description="Deliveries of one job before it is recorded as failed."
    )
    codex_worker_backoff_seconds: str = Field(
        default="2,10,30,60",
        pattern=r"^\d+(\.\d+)?(,\d+(\.\d+)?)*$",
        description="Delays before redelivering a job that failed transiently (the last repeats).",
    )
    codex_worker_tries: int = Field(
        default=2, ge=1, le=10, description="Tries of one agent call for transient engine failures."
    )

    # --- engines and models ---------------------------------------------------------------------------
    default_engine: Literal["codex", "claude-code", "scripted"] = "codex"
    planning_engine: str = ""
    decompose_engine: str = ""
    exec_engine: str = ""
    qa_engine: str = ""
    planning_model: str = Field(
        default="gpt-5.1-high",
        validation_alias=AliasChoices("PROTOCOL_PLANNING_MODEL", "DEKSDENFLOW_PLANNING_MODEL"),
    )
    decompose_model: str = Field(
        default="gpt-5.1-high",
        validation_alias=AliasChoices("PROTOCOL_DECOMPOSE_MODEL", "DEKSDENFLOW_DECOMPOSE_MODEL"),
    )
    exec_model: str = Field(
        default="codex-5.1-max-xhigh",
        validation_alias=AliasChoices("PROTOCOL_EXEC_MODEL", "DEKSDENFLOW_EXEC_MODEL"),
    )
    qa_model: str = Field(
        default="codex-5.1-max", validation_alias=AliasChoices("PROTOCOL_QA_MODEL", "DEKSDENFLOW_QA_MODEL")
    )
    qa_light_model: str = Field(
        default="",
        description="Model of QA policy 'light' (cheaper); empty: the QA model. "
        "Light QA also sees only the diff.",
    )
    decompose_steps: bool = Field(default=True, description="Refine each step file after planning.")
    auto_qa_after_exec: bool = Field(default=False, description="DEKSDENFLOW_AUTO_QA_AFTER_EXEC")

    codex_bin: str = Field(default="codex", description="The Codex CLI (PATH lookup unless a path).")
    codex_args: str = Field(
        default="", description="Extra `codex exec` arguments (shell-quoted), e.g. -c ..."
    )
    claude_bin: str = Field(default="claude", description="The Claude Code CLI.")
    claude_args: str = Field(default="", description="Extra `claude` arguments (shell-quoted).")
    scripted_script: Path | None = Field(
        default=None,
        description="Script of the scripted engine; unset: .deksdenflow/scripted.json in the repository.",
    )
    agent_timeout_seconds: float = Field(default=3600.0, gt=0)

    # --- budgets ---------------------------------------------------------------------------------------
    token_budget_mode: Literal["strict", "warn", "off"] = "strict"  # noqa: S105 - a mode, not a secret
    max_tokens_per_step: int = Field(default=0, ge=0, description="0: unlimited")
    max_tokens_per_protocol: int = Field(default=0, ge=0, description="0: unlimited")
    max_tokens_per_project: int = Field(default=0, ge=0, description="0: unlimited")
    max_cost_usd_per_step: float = Field(default=0.0, ge=0, description="0: unlimited")
    max_cost_usd_per_protocol: float = Field(default=0.0, ge=0, description="0: unlimited")
    max_cost_usd_per_project: float = Field(default=0.0, ge=0, description="0: unlimited")
    budget_warn_share: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Spending past this share of a budget records protocol_run.budget_warning_recorded "
        "once (and counts deksdenflow_budget_warnings_total); 0: no warning.",
    )
    price_table: str = Field(
        default="",
        description="JSON (or @path to a JSON file): {model: {input, cached_input, output}} in USD per "
        "million tokens. It wins over the published prices; a model known to neither costs 0.",
    )
    fallbacks_planning: str = Field(
        default="",
        description="Fallback chain of the phase: engine[:model] entries, comma-separated, taken in order "
        "on a rate limit, usage limit, context window, provider error or timeout (a project's own "
        "chains win). Likewise fallbacks_decompose, _exec, _qa, _discovery.",
    )
    fallbacks_decompose: str = ""
    fallbacks_exec: str = ""
    fallbacks_qa: str = ""
    fallbacks_discovery: str = ""
    fallback_cooldown_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long an engine and model left for a fallback are skipped by this worker.",
    )
    qa_second_reviewer: str = Field(
        default="",
        pattern=r"^([a-z][a-z0-9-]*(:\S+)?)?$",
        description="engine[:model] of the second QA reviewer of a step marked critical (both must say "
        "PASS); empty: the step's QA engine and model, asked again independently.",
    )
    guardrails: Literal["enforce", "off"] = Field(
        default="enforce",
        description="Check every execution's change before it is committed (scope, protected paths, size, "
        "secrets, weakened tests, an empty change of a work step); off: no check.",
    )
    guardrail_reasks: int = Field(
        default=1, ge=0, le=5, description="Times the agent is asked again with what the guardrails found."
    )
    guardrail_max_lines: int = Field(
        default=5000, ge=0, description="Lines an execution may change (0: any)."
    )
    guardrail_max_files: int = Field(default=200, ge=0, description="Files an execution may change (0: any).")
    guardrail_protected: str = Field(
        default="",
        description="More protected paths (comma-separated globs) besides CI configuration and lock files.",
    )
    published_prices: bool = Field(
        default=True,
        description="Price a model the price table does not list at its provider's published prices "
        "(the genai-prices package's bundled table; no request is made). false: such models cost 0.",
    )

    # --- git ---------------------------------------------------------------------------------------------
    git_user: str = "deksdenflow"
    git_email: str = "deksdenflow@localhost"

    @field_validator("planning_engine", "decompose_engine", "exec_engine", "qa_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value and value not in ENGINE_IDS:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(ENGINE_IDS)}")
        return value

    @field_validator("qa_second_reviewer")
    @classmethod
    def _known_reviewer(cls, value: str) -> str:
        engine = value.partition(":")[0]
        if engine and engine not in ENGINE_IDS:
            raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINE_IDS)}")
        return value

    def engine_for(self, phase: str) -> str:
        """This worker's engine for ``phase`` (``qa``, ``exec``...), else its default engine."""
        engine_id: str = getattr(self, f"{phase}_engine") or self.default_engine
        return engine_id

    def fallbacks_for(self, phase: str) -> list[str]:
        """This worker's fallback chain for ``phase`` (``engine[:model]`` entries)."""
        raw: str = getattr(self, f"fallbacks_{phase}")
        return [entry.strip() for entry in raw.split(",") if entry.strip()]

    def backoff(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.codex_worker_backoff_seconds.split(","))

    def codex_extra_args(self) -> list[str]:
        return shlex.split(self.codex_args)

    def claude_extra_args(self) -> list[str]:
        return shlex.split(self.claude_args)

    def prices(self) -> dict[str, dict[str, float]]:
        raw = self.price_table.strip()
        if raw.startswith("@"):
            raw = Path(raw[1:]).read_text()
        if not raw:
            return {}
        table = json.loads(raw)
        if not isinstance(table, dict):
            raise ValueError(
                "DEKSDENFLOW_PRICE_TABLE must be a JSON object {model: {input, cached_input, output}}"
            )
        return {str(model): {k: float(v) for k, v in prices.items()} for model, prices in table.items()}

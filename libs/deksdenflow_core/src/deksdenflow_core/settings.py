"""Settings shared by every deksdenflow process.

All settings come from the environment with the prefix ``DEKSDENFLOW_`` (pydantic-settings), and are
built in each process's ``main`` — never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEKSDENFLOW_", extra="ignore", frozen=True)


class EventStoreSettings(_Base):
    """Where the event log lives and how the stream is provisioned."""

    nats_url: str = Field(default="nats://127.0.0.1:14222", description="NATS server(s), comma-separated.")
    stream_name: str = Field(default="DF_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")
    subject_prefix: str = Field(
        default="df",
        pattern=r"^[a-z0-9_-]+$",
        description="First subject token; decisions go to <prefix>.evt.<project>.<aggregate>.<id>.<type>, "
        "each event to <prefix>.feed.<project>.<aggregate>.<id>.<type>.",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    request_timeout_seconds: float = Field(default=5.0, gt=0)


class DatabaseSettings(_Base):
    """The PostgreSQL that holds the projections."""

    db_url: str = Field(
        default="postgresql://postgres@127.0.0.1:15432/deksdenflow",
        description="libpq-style URL of the read-model database.",
    )


class LogSettings(_Base):
    """Structured logging."""

    log_level: str = Field(default="INFO", pattern=r"^(?i)(debug|info|warning|error|critical)$")
    log_json: bool = False


class RunLimits(_Base):
    """How many protocol runs go at once (0: no limit). Set, every start queues the run and the git
    worker's admission admits queued runs in order as slots free; unset, a start plans at once."""

    max_active_runs: int = Field(
        default=0, ge=0, description="Runs active at once in all (DEKSDENFLOW_MAX_ACTIVE_RUNS); 0: no limit."
    )
    max_active_runs_per_project: int = Field(
        default=0,
        ge=0,
        description="Runs active at once in one project (DEKSDENFLOW_MAX_ACTIVE_RUNS_PER_PROJECT); 0: none.",
    )

    @property
    def limited(self) -> bool:
        return bool(self.max_active_runs or self.max_active_runs_per_project)


class ApiSettings(RunLimits):
    """The HTTP API process (it queues starts when run limits are set)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8010, ge=1, le=65535)
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    api_token: SecretStr = Field(
        default=SecretStr(""),
        description="Admin bearer token(s), comma-separated (DEKSDENFLOW_API_TOKEN). Empty: only project "
        "tokens are accepted.",
    )
    read_wait_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How long a read waits for the read model to reach a requested sequence.",
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    max_commands_in_flight: int = Field(
        default=32,
        ge=1,
        description="Commands one API process runs at once; the others wait in one queue per project (or "
        "run, step, collection) and are let in by turns, so that a flood of one kind cannot crowd out the "
        "others. Lower favours a quiet project's latency under load, higher the throughput (a command "
        "mostly waits for NATS): measured on 2 cores, 4 halves the throughput of one-event commands.",
    )
    sse_max_clients: int = Field(
        default=1000, ge=1, description="Concurrent /events/stream clients per API process (503 beyond)."
    )
    sse_client_queue_events: int = Field(
        default=1000,
        ge=1,
        description="Events a stream client may fall behind by before it is disconnected (it resumes with "
        "Last-Event-ID).",
    )
    read_model_stall_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Readiness fails once events have waited this long with the read model not moving.",
    )
    idempotency_ttl_days: int = Field(
        default=30, ge=1, description="How long Idempotency-Key results are kept."
    )
    branch_list_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a branch listing waits for the git worker's answer."
    )

    webhook_token: SecretStr = Field(
        default=SecretStr(""),
        description="Global webhook secret(s), comma-separated for rotation (DEKSDENFLOW_WEBHOOK_TOKEN): the "
        "GitHub HMAC key / GitLab token of every project, and the key per-project secrets derive from. "
        "Empty: webhooks are refused (401).",
    )
    webhook_max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest webhook body accepted (413 above)."
    )

    idempotency_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret(s) the answers kept for Idempotency-Key replays are encrypted with, "
        "comma-separated for rotation: the first seals, all open (DEKSDENFLOW_IDEMPOTENCY_SECRET). Every "
        "replica needs the same. Empty: a random key per process (replays do not survive a restart).",
    )

    def admin_tokens(self) -> list[str]:
        return [t.strip() for t in self.api_token.get_secret_value().split(",") if t.strip()]

    def webhook_tokens(self) -> list[str]:
        return [t.strip() for t in self.webhook_token.get_secret_value().split(",") if t.strip()]

    def idempotency_secrets(self) -> list[str]:
        return [t.strip() for t in self.idempotency_secret.get_secret_value().split(",") if t.strip()]


class RuntimeSettings(_Base):
    """The local runtime (``deksdenflow run``): data directory, embedded servers and process supervision.

    The embedded NATS and PostgreSQL are only started when ``DEKSDENFLOW_NATS_URL`` /
    ``DEKSDENFLOW_DB_URL`` are not set; their ports are deliberately not the standard ones (4222, 5432)
    so they never collide with servers already installed on the machine.
    """

    home: Path = Field(
        default=Path(".deksdenflow"),
        description="Data directory (DEKSDENFLOW_HOME): JetStream store, PGDATA, logs. Reused across runs.",
    )
    embedded_nats_host: str = "127.0.0.1"
    embedded_nats_port: int = Field(default=14222, ge=1, le=65535)
    embedded_pg_host: str = "127.0.0.1"
    embedded_pg_port: int = Field(default=15432, ge=1, le=65535)
    embedded_pg_system_user: str = Field(
        default="deksdenflow-pg",
        pattern=r"^[a-z_][a-z0-9_-]*$",
        description="Unprivileged system user that runs the embedded PostgreSQL when we run as root "
        "(PostgreSQL refuses to run as root); created with useradd if missing.",
    )
    services: str = Field(
        default="api,projector,codex-worker,git-ci-worker",
        pattern=r"^[a-z0-9,\s-]*$",
        description="Comma-separated services to run (a subset, e.g. to run workers elsewhere).",
    )
    startup_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long a server or the API may take to become ready."
    )
    stop_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a process may take to stop before it is killed."
    )
    restart_initial_delay_seconds: float = Field(
        default=0.5, gt=0, description="Delay before a crashed service or embedded server is started again."
    )
    restart_max_delay_seconds: float = Field(
        default=30.0, gt=0, description="The delay doubles with each crash in a row, up to this."
    )
    restart_stable_seconds: float = Field(
        default=30.0, gt=0, description="A process that ran this long before crashing starts the delays anew."
    )
    restart_max_crashes: int = Field(
        default=5, ge=1, description="This many crashes of one process within the window is a crash loop."
    )
    restart_window_seconds: float = Field(
        default=60.0, gt=0, description="The window of the crash-loop rule; on a crash loop the run gives up."
    )

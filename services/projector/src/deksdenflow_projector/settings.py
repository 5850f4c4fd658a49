"""Projector settings (``DEKSDENFLOW_PROJECTOR_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProjectorSettings(BaseSettings):
    """How the projector consumes and where it reports."""

    model_config = SettingsConfigDict(env_prefix="DEKSDENFLOW_PROJECTOR_", extra="ignore", frozen=True)

    durable: str = Field(default="projector", pattern=r"^[A-Za-z0-9_-]+$")
    feed_durable: str = Field(
        default="feed",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The durable consumer on the log of the writer of the feed (one message per event).",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8011, ge=1, le=65535, description="/health and /metrics")
    lag_interval_seconds: float = Field(default=1.0, gt=0)
    consumer_metrics_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often every durable consumer's info is sampled for deksdenflow_consumer_* metrics.",
    )
    ack_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a delivered batch may stay unacknowledged before redelivery.",
    )
    stall_after_seconds: float = Field(
        default=10.0,
        gt=0,
        description="/health answers 503 once events have waited this long with the checkpoint not moving.",
    )
    debug_batch_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Fault injection for tests: hold each batch's transaction open this long before commit.",
    )

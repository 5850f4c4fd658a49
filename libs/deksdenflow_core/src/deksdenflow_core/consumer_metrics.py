"""The backlog of every durable consumer, from JetStream's own consumer info, as Prometheus gauges.

Sampled, not computed: every ``interval`` one ``CONSUMER.LIST`` per stream (the log's and the feed's) by
one process that always runs (the projector), so a worker kind scaled to zero still has its backlog
exported (KEDA scales it up from there). Labels are the stream and the consumer's durable name: a handful
per deployment, never a project or a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge

from deksdenflow_core.logging import get_logger

log = get_logger(__name__)


class ConsumerGauges:
    """``deksdenflow_consumer_*`` by stream and consumer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["stream", "consumer"]
        self.pending = Gauge(
            "deksdenflow_consumer_pending_messages",
            "Messages matching the consumer's filter not delivered yet (its backlog)",
            labels,
            registry=registry,
        )
        self.ack_pending = Gauge(
            "deksdenflow_consumer_ack_pending_messages",
            "Messages delivered and not acknowledged yet (in flight)",
            labels,
            registry=registry,
        )
        self.redelivered = Gauge(
            "deksdenflow_consumer_redelivered_messages",
            "Messages delivered more than once and not acknowledged yet (retried, or redelivered after "
            "their ack wait)",
            labels,
            registry=registry,
        )
        self.waiting = Gauge(
            "deksdenflow_consumer_waiting_pulls",
            "Pull requests waiting for messages (readers that are idle)",
            labels,
            registry=registry,
        )
        self.ack_wait = Gauge(
            "deksdenflow_consumer_ack_wait_seconds",
            "How long a delivered message may go without an ack or heartbeat before it is redelivered",
            labels,
            registry=registry,
        )
        self.delivered_seq = Gauge(
            "deksdenflow_consumer_delivered_stream_sequence",
            "The last stream sequence delivered to the consumer",
            labels,
            registry=registry,
        )
        self.samples = Counter(
            "deksdenflow_consumer_samples",
            "Samples of the consumers' info, by outcome (ok, failed)",
            ["outcome"],
            registry=registry,
        )
        self._gauges = (
            self.pending,
            self.ack_pending,
            self.redelivered,
            self.waiting,
            self.ack_wait,
            self.delivered_seq,
        )
        self._seen: set[tuple[str, str]] = set()

    async def sample(self, js: JetStreamContext, streams: Sequence[str]) -> None:
        """Read every consumer of ``streams`` once; consumers gone since the last sample are removed."""
        seen: set[tuple[str, str]] = set()
        for stream in streams:
            for info in await js.consumers_info(stream):
                key = (stream, info.name)
                seen.add(key)
                self.pending.labels(*key).set(info.num_pending or 0)
                self.ack_pending.labels(*key).set(info.num_ack_pending or 0)
                self.redelivered.labels(*key).set(info.num_redelivered or 0)
                self.waiting.labels(*key).set(info.num_waiting or 0)
                self.ack_wait.labels(*key).set(info.config.ack_wait or 0)
                delivered = info.delivered.stream_seq if info.delivered else 0
                self.delivered_seq.labels(*key).set(delivered or 0)
        for gone in self._seen - seen:
            for gauge in self._gauges:
                gauge.remove(*gone)
        self._seen = seen

    async def run(self, js: JetStreamContext, streams: Sequence[str], interval_seconds: float) -> None:
        """Sample every ``interval_seconds`` until cancelled; a failed sample is counted and logged."""
        while True:
            try:
                await self.sample(js, streams)
                self.samples.labels("ok").inc()
            except Exception as exc:
                self.samples.labels("failed").inc()
                log.warning("consumer metrics not sampled", error=repr(exc))
            await asyncio.sleep(interval_seconds)

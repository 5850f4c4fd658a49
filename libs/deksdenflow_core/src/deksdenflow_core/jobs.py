"""What every worker does with the requests it takes from the log: run several consumer loops on one
shared durable consumer, and append its results caused by the request."""

from __future__ import annotations

import asyncio
import uuid

from deksdenflow_core.consumer import ConsumerLoop, ConsumerSpec, Delivery, FailureHook, Handler
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore


class ConsumerPool:
    """``concurrency`` loops on one durable pull consumer: this process's share of a work queue that
    every replica pulls from (JetStream gives each message to one of them)."""

    def __init__(
        self, store: JetStreamEventStore, spec: ConsumerSpec, *, concurrency: int, on_failure: FailureHook
    ) -> None:
        self._loops = [
            ConsumerLoop(store.jetstream(), store.stream, spec, on_failure=on_failure)
            for _ in range(concurrency)
        ]

    async def run(self, handler: Handler) -> None:
        await self._loops[0].ensure_consumer()
        await asyncio.gather(*(loop.run(handler) for loop in self._loops))

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()


def result_meta(delivery: Delivery, *, source: str, worker_id: str, aggregate_id: str) -> AppendMeta:
    """Metadata of a worker's append answering ``delivery``'s request.

    Causation is the request event, then ``#`` and what tells this append from the job's others: event
    ids derive from the causation, and two workers answering one request must never share ids.
    """
    envelope = delivery.event.envelope
    return AppendMeta(
        source=source,
        actor=f"worker:{worker_id}",
        correlation_id=envelope.correlation_id or aggregate_id,
        causation_id=f"{envelope.id}#{uuid.uuid4().hex[:12]}",
    )

"""The consumer loop every service runs: durable pull consumer, batch fetch, decode, dispatch, settle.

Settling rules (ARCHITECTURE.md, "Consumers and delivery"):

* handler returns → ``ack`` (only then: the effect is committed before the ack);
* handler raises a *retryable* error → ``nak`` with the delay of the next backoff step;
* handler raises a non-retryable error, or retries are exhausted → ``on_failure`` is awaited (a service
  appends its ``…failed`` event there), then ``term``: nothing is silently stuck;
* a message that is not a valid event (``ContractError``) → logged and ``term``-ed (poison message), or,
  with ``poison="retry"`` (the projector, which must not skip anything), nak-ed until a newer release
  that understands it is deployed;
* while a handler runs, ``in_progress`` is sent every ``heartbeat_seconds`` so a long agent run is not
  redelivered to another replica while it is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from deksdenflow_core.envelope import RecordedEvent, decode
from deksdenflow_core.errors import ContractError, DeksdenflowError
from deksdenflow_core.logging import bind_ids, get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer and how its messages are retried."""

    durable: str
    filter_subjects: Sequence[str]
    max_deliver: int = 10
    # Delay before delivery n+1 after a retryable failure of delivery n (the last value repeats).
    backoff_seconds: Sequence[float] = (1.0, 5.0, 15.0, 60.0)
    ack_wait_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    batch: int = 64
    fetch_timeout_seconds: float = 1.0
    max_ack_pending: int = 1000
    # Acknowledging a message acknowledges every earlier one (for ordered, single-writer consumers such
    # as the projector: one ack per batch instead of one per event).
    ack_all: bool = False

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=list(self.filter_subjects),
            ack_policy=AckPolicy.ALL if self.ack_all else AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
        )

    def delay_after(self, delivered: int) -> float:
        steps = list(self.backoff_seconds) or [1.0]
        return steps[min(delivered, len(steps)) - 1]


@dataclass(frozen=True)
class Delivery:
    """One delivered event and how many times it has been delivered."""

    event: RecordedEvent
    num_delivered: int
    msg: Msg = field(repr=False)


Handler = Callable[[Delivery], Awaitable[None]]
BatchHandler = Callable[[list[Delivery]], Awaitable[None]]
FailureHook = Callable[[Delivery, DeksdenflowError | Exception], Awaitable[None]]


class ConsumerLoop:
    """Runs one durable consumer until ``stop()``."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        spec: ConsumerSpec,
        *,
        on_failure: FailureHook | None = None,
        poison: Literal["term", "retry"] = "term",
    ) -> None:
        self._js = js
        self._poison = poison
        self._stream = stream
        self._spec = spec
        self._on_failure = on_failure
        self._stopping = asyncio.Event()
        self._settling: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stopping.set()

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to the spec. Safe to repeat."""
        await self._js.add_consumer(self._stream, config=self._spec.config())

    async def run(self, handler: Handler) -> None:
        """Dispatch messages one at a time (in order within a batch), settling each."""

        async def each(batch: list[Msg], _: object) -> bool:
            for msg in batch:
                try:
                    delivery = self._decode(msg)
                except ContractError as exc:
                    log.error("undecodable message kept for a newer release", error=exc.message)
                    await msg.nak(delay=self._spec.delay_after(msg.metadata.num_delivered))
                    continue
                if delivery is not None:
                    await self._settle(delivery, handler)
            return True

        await self._loop(each)

    async def run_batches(self, handler: BatchHandler, *, prefetch: bool = False) -> None:
        """Dispatch whole batches (e.g. one database transaction per batch); ack after success.

        A failed batch is nak-ed whole and redelivered; the handler must be idempotent per event (the
        projector skips events at or below its checkpoint). With ``prefetch`` the next batch is fetched
        and decoded while the handler works on the current one (set ``max_ack_pending`` to at least two
        batches); if the current batch fails, the prefetched one is nak-ed too, so redelivery keeps the
        order.
        """

        def decode_all(batch: list[Msg]) -> list[Delivery] | Exception:
            try:
                return [d for d in (self._decode(m) for m in batch) if d is not None]
            except Exception as exc:  # an undecodable event fails the batch it is in
                return exc

        async def whole(batch: list[Msg], decoded: list[Delivery] | Exception) -> bool:
            try:
                if isinstance(decoded, Exception):
                    raise decoded
                if decoded:
                    async with self._heartbeat(batch):
                        await handler(decoded)
            except Exception as exc:
                log.warning("batch failed; will be redelivered", error=repr(exc), size=len(batch))
                await self._nak_all(batch)
                return False
            if self._spec.ack_all:
                await batch[-1].ack()
            else:
                for m in batch:
                    await m.ack()
            return True

        await self._loop(whole, prepare=decode_all, prefetch=prefetch)

    async def _nak_all(self, batch: list[Msg]) -> None:
        if batch:
            delay = self._spec.delay_after(max(m.metadata.num_delivered for m in batch))
            for m in batch:
                await m.nak(delay=delay)

    async def _loop(
        self,
        dispatch: Callable[[list[Msg], Any], Awaitable[bool]],
        *,
        prepare: Callable[[list[Msg]], Any] = lambda batch: None,
        prefetch: bool = False,
    ) -> None:
        await self.ensure_consumer()
        psub = await self._js.pull_subscribe_bind(self._spec.durable, stream=self._stream)

        async def fetch() -> tuple[list[Msg], Any]:
            try:
                batch = list(await psub.fetch(self._spec.batch, timeout=self._spec.fetch_timeout_seconds))
            except TimeoutError:  # nats-py raises both its own and asyncio's TimeoutError for "nothing yet"
                return [], None
            return batch, prepare(batch)

        ahead: asyncio.Task[tuple[list[Msg], Any]] | None = None
        try:
            while not self._stopping.is_set():
                batch, prepared = await ahead if ahead is not None else await fetch()
                ahead = None
                if not batch:
                    continue
                if prefetch:  # only one fetch is ever in flight on the subscription
                    ahead = asyncio.create_task(fetch())
                if not await dispatch(batch, prepared) and ahead is not None:
                    await self._nak_all((await ahead)[0])
                    ahead = None
        finally:
            if ahead is not None:
                with contextlib.suppress(Exception):
                    await self._nak_all((await ahead)[0])
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    def _decode(self, msg: Msg) -> Delivery | None:
        meta = msg.metadata
        try:
            event = decode(msg.headers, msg.data, meta.sequence.stream)
        except ContractError as exc:
            if self._poison == "retry":
                raise
            log.error("poison message terminated", stream_seq=meta.sequence.stream, error=exc.message)
            task = asyncio.get_running_loop().create_task(msg.term())
            self._settling.add(task)  # keep a reference until it is done
            task.add_done_callback(self._settling.discard)
            return None
        return Delivery(event=event, num_delivered=meta.num_delivered, msg=msg)

    async def _settle(self, delivery: Delivery, handler: Handler) -> None:
        env = delivery.event.envelope
        with bind_ids(
            event_id=env.id,
            event_type=env.type,
            correlation_id=env.correlation_id,
            causation_id=env.causation_id,
            stream_seq=delivery.event.stream_seq,
            delivery=delivery.num_delivered,
        ):
            try:
                async with self._heartbeat([delivery.msg]):
                    await handler(delivery)
            except Exception as exc:
                await self._failed(delivery, exc)
                return
            await delivery.msg.ack()

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        retryable = isinstance(exc, DeksdenflowError) and exc.retryable
        exhausted = delivery.num_delivered >= self._spec.max_deliver
        if retryable and not exhausted:
            delay = self._spec.delay_after(delivery.num_delivered)
            log.warning("handler failed; retrying", error=repr(exc), retry_in_s=delay)
            await delivery.msg.nak(delay=delay)
            return
        log.error("handler failed for good", error=repr(exc), exhausted=exhausted)
        if self._on_failure is not None:
            try:
                await self._on_failure(delivery, exc)
            except Exception as hook_exc:
                # The failure could not be recorded: keep the message so it is not lost.
                log.error("failure hook failed; message kept for redelivery", error=repr(hook_exc))
                await delivery.msg.nak(delay=self._spec.delay_after(delivery.num_delivered))
                return
        await delivery.msg.term()

    @contextlib.asynccontextmanager
    async def _heartbeat(self, msgs: list[Msg]) -> Any:
        async def beat() -> None:
            while True:
                await asyncio.sleep(self._spec.heartbeat_seconds)
                for m in msgs:
                    await m.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

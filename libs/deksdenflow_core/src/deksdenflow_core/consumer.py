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

Batch consumers (the projector) run a pipeline instead: while batch N commits, batch N+1 is prepared
(decoded, folded) and further messages arrive through a pull request that is always open. Batches still
commit one at a time and in order, each acked only after its commit.

A pipeline treats its JetStream consumer as a *cursor*, not as a retry queue: when a batch fails,
nothing is nak-ed. Everything in flight is dropped, and the consumer is created again to start right
after the last sequence whose effect is committed (``BatchStages.position``: the projector's
checkpoint). Nak-ing would not do: nak-ed messages come back after their delay, while messages the
consumer has not delivered yet come at once, so redeliveries arrive out of order, a consumer that
expects ``checkpoint + 1`` refuses each for its gap and naks it again, and it never gets anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.envelope import RecordedEvent, decode_all
from deksdenflow_core.errors import ContractError, DeksdenflowError, InfrastructureError
from deksdenflow_core.logging import bind_ids, get_logger
from deksdenflow_core.nats_internals import (
    HEADER_BLOCK_START,
    Frame,
    api_prefix,
    connection_of,
    frame_routes,
    message,
    parse_header_lines,
    subscription_id,
)

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

    def config(self, start_seq: int | None = None) -> ConsumerConfig:
        """The consumer's configuration; ``start_seq``: deliver from that stream sequence on."""
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=list(self.filter_subjects),
            ack_policy=AckPolicy.ALL if self.ack_all else AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL if start_seq is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
        )

    def delay_after(self, delivered: int) -> float:
        steps = list(self.backoff_seconds) or [1.0]
        return steps[min(delivered, len(steps)) - 1]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered event and how many times its message has been delivered (a message of the log is
    a decision: each of its events is a delivery of its own)."""

    event: RecordedEvent
    num_delivered: int


Handler = Callable[[Delivery], Awaitable[None]]
BatchHandler = Callable[[list[Delivery]], Awaitable[None]]
FailureHook = Callable[[Delivery, DeksdenflowError | Exception], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """When a failed delivery comes again: after ``delay_seconds``, as delivery ``delivered + 1`` of at
    most ``max_deliver``."""

    delivered: int
    max_deliver: int
    delay_seconds: float


# Told that a delivery failed with a retryable error and when it comes again (before it is nak-ed; what
# it raises is logged and changes nothing of the retry).
RetryHook = Callable[[Delivery, Exception, RetrySchedule], Awaitable[None]]
Prepared = TypeVar("Prepared")


class BatchStages(Protocol[Prepared]):
    """A batch handler in two stages, so that one batch is prepared while the one before it commits.

    ``prepare`` runs for batch N+1 while ``commit`` of batch N is in flight, and may build on what it
    prepared for batch N (e.g. folded state). If a batch fails, every batch in flight is dropped,
    ``discard`` is called (forget what was carried over from them), and consuming starts again right
    after ``position()``.
    """

    async def prepare(self, batch: list[Delivery]) -> Prepared: ...

    async def commit(self, prepared: Prepared) -> None: ...

    def discard(self) -> None: ...

    async def position(self) -> int | None:
        """The last stream sequence whose effect is committed, as the stages' own store says (it may
        raise while that store is down: it is asked again). None: the consumer's ack floor."""
        ...


class _Whole:
    """``run_batches``' handler as stages: nothing to prepare, the handler is the commit."""

    def __init__(self, handler: BatchHandler) -> None:
        self._handler = handler

    async def prepare(self, batch: list[Delivery]) -> list[Delivery]:
        return batch

    async def commit(self, prepared: list[Delivery]) -> None:
        await self._handler(prepared)

    def discard(self) -> None:
        pass

    async def position(self) -> int | None:
        return None  # what was acked is what was handled


class _Pulled(NamedTuple):
    """A delivered message and what its reply subject says about it."""

    msg: Msg
    stream_seq: int
    num_delivered: int


def _reply_numbers(reply: bytes) -> tuple[int, int]:
    """Stream sequence and delivery count from a JetStream reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (9 tokens), or with a
    domain and an account hash after ``ACK`` (11 or 12 tokens). nats-py's ``msg.metadata`` reads the
    same, and builds four objects per message doing it.
    """
    tokens = reply.split(b".")
    at = 4 if len(tokens) == 9 else 6
    return int(tokens[at + 1]), int(tokens[at])


def _pulled(msg: Msg) -> _Pulled:
    stream_seq, delivered = _reply_numbers(msg.reply.encode())
    return _Pulled(msg, stream_seq, delivered)


def _num_pending(reply: bytes) -> int:
    """Messages left on the consumer when this one was sent (last token but one or last, see above)."""
    tokens = reply.split(b".")
    return int(tokens[8 if len(tokens) == 9 else 10])


# Messages decoded between two yields to the event loop, so that a commit in flight keeps moving: each
# of its statements needs the loop for a moment when PostgreSQL answers, and waits until the next yield
# (at 20 messages a yield, the projector's commits spent ~0.4 s per 100k events waiting for it).
_DECODE_SLICE = 5


class _Puller:
    """Keeps a pull request open on a durable consumer and buffers what it delivers, undecoded.

    nats-py's ``fetch`` runs two tasks per message and asks for the next batch only when called; here
    frames land in a buffer straight from the protocol parser (see ``nats_internals.frame_routes``)
    while the handler works, and the next request goes out as soon as the previous one is fully
    delivered (or expired). The consumer's ``max_ack_pending`` bounds the buffer.
    """

    def __init__(self, js: JetStreamContext, stream: str, spec: ConsumerSpec) -> None:
        self._nc = connection_of(js)
        self._subject = f"{api_prefix(js)}.CONSUMER.MSG.NEXT.{stream}.{spec.durable}"
        expires_ns = int(spec.fetch_timeout_seconds * 1e9)
        self._request = json.dumps({"batch": spec.batch, "expires": expires_ns}).encode()
        self._batch = spec.batch
        self._expires = spec.fetch_timeout_seconds
        self._buffer: deque[Frame] = deque()
        self._owed = 0  # messages the open request may still deliver
        self._renew_at = 0.0  # when to send a new request even though no answer ended the last one
        self._wake = asyncio.Event()
        self._inbox = self._nc.new_inbox()
        self._sub: Subscription | None = None
        self._gone = ""  # the server's word that the consumer is gone: nothing will come any more
        self._stopped = False

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox)
        frame_routes(self._nc)[subscription_id(self._sub)] = self._on_frame
        await self._pull()

    async def close(self) -> list[Frame]:
        """Stop receiving; return what was buffered and not taken (to be nak-ed)."""
        if self._sub is not None:
            frame_routes(self._nc).pop(subscription_id(self._sub), None)
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        return self.drain()

    def drain(self) -> list[Frame]:
        """Take every buffered frame."""
        left = list(self._buffer)
        self._buffer.clear()
        return left

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Make ``next_batch`` return nothing from now on (what is buffered is left for ``close``)."""
        self._stopped = True
        self._wake.set()

    def msg(self, frame: Frame) -> Msg:
        """A frame as a nats-py message to settle (ack, nak, ...); its headers are not parsed."""
        return message(self._nc, frame)

    def msgs(self, frames: Sequence[Frame]) -> list[Msg]:
        return [self.msg(f) for f in frames]

    async def next_batch(self, wait_seconds: float, interrupt: asyncio.Future[Any] | None) -> list[Frame]:
        """Up to ``batch`` frames, as soon as a full batch is buffered or the consumer has no more.

        Returns early (possibly empty) when ``wait_seconds`` pass or ``interrupt`` is done.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            if self._stopped:
                return []
            if self._gone:
                # Fail, so that the service restarts and creates the consumer again.
                raise InfrastructureError(f"pull consumer is gone: {self._gone}", subject=self._subject)
            buffered = len(self._buffer)
            if buffered >= self._batch or (buffered and _num_pending(self._buffer[-1].reply) == 0):
                return self._take()
            now = loop.time()
            if now >= self._renew_at:  # the request was lost (reconnect) or ended in an error status
                await self._pull()
            if now >= deadline or (interrupt is not None and interrupt.done()):
                return self._take()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(deadline, self._renew_at) - now)

    def _take(self) -> list[Frame]:
        popleft = self._buffer.popleft
        return [popleft() for _ in range(min(self._batch, len(self._buffer)))]

    async def _pull(self) -> None:
        self._owed = self._batch
        self._renew_at = asyncio.get_running_loop().time() + self._expires + 1.0
        await self._nc.publish(self._subject, self._request, reply=self._inbox)

    async def _on_frame(self, frame: Frame) -> None:
        """Runs inside nats-py's protocol parser, so it never raises: an error there would stop the
        connection from reading."""
        if frame.reply:  # a message: its reply subject is where its ack goes
            self._buffer.append(frame)
            self._owed -= 1
        else:  # the server ends the request: expired (408), or refused/cancelled (409, ...)
            status_line = (frame.headers or b"").split(b"\r\n", 1)[0].decode(errors="replace")
            status = status_line[len("NATS/1.0 ") :][:3]
            if status == "100":  # idle heartbeat: the request is still open
                return
            self._owed = 0
            if status == "503" or "consumer deleted" in status_line.lower():  # no responders / deleted
                self._gone = status_line
                self._wake.set()
                return
            if status != "408":
                log.warning("pull request ended", status=status_line)
                # Ask again after a pause rather than spinning on a refusal.
                self._renew_at = asyncio.get_running_loop().time() + self._expires
                self._wake.set()
                return
        if self._owed <= 0:
            try:
                await self._pull()
            except Exception as exc:  # e.g. the connection closed: next_batch asks again later
                log.warning("pull request not sent", error=repr(exc))
        self._wake.set()


def _frame_headers(frame: Frame) -> dict[str, str] | None:
    """A frame's headers, parsed the way nats-py parses them."""
    raw = frame.headers
    if raw and raw.startswith(HEADER_BLOCK_START):
        return parse_header_lines(raw[len(HEADER_BLOCK_START) :]) or None
    return None


@dataclass
class _InFlight:
    """A batch whose commit is running."""

    frames: list[Frame]
    task: asyncio.Task[None]


class ConsumerLoop:
    """Runs one durable consumer until ``stop()``."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        spec: ConsumerSpec,
        *,
        on_failure: FailureHook | None = None,
        on_retry: RetryHook | None = None,
        poison: Literal["term", "retry"] = "term",
    ) -> None:
        self._js = js
        self._on_retry = on_retry
        self._poison = poison
        self._stream = stream
        self._spec = spec
        self._on_failure = on_failure
        self._stopping = asyncio.Event()
        self._settling: set[asyncio.Task[None]] = set()
        self._puller: _Puller | None = None
        self._failures = 0  # batches failed in a row (a pipeline's pause after one grows with them)

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stopping.set()
        if self._puller is not None:
            self._puller.stop()

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to the spec. Safe to repeat."""
        await self._js.add_consumer(self._stream, config=self._spec.config())

    async def run(self, handler: Handler) -> None:
        """Dispatch messages one at a time (in order within a batch), settling each."""

        async def each(batch: list[Msg]) -> None:
            for msg in batch:
                pulled = _pulled(msg)
                try:
                    deliveries = self._decode_pulled(pulled)
                except ContractError as exc:
                    log.error("undecodable message kept for a newer release", error=exc.message)
                    await msg.nak(delay=self._spec.delay_after(pulled.num_delivered))
                    continue
                await self._settle(deliveries, msg, handler)

        await self._loop(each)

    async def run_batches(self, handler: BatchHandler) -> None:
        """Dispatch whole batches (e.g. one database transaction per batch); ack after success.

        After a failed batch, consuming starts again after the last acknowledged message, in order;
        the handler must be idempotent per event (the projector skips events at or below its
        checkpoint). The next batch is received while the handler works (set ``max_ack_pending`` to a
        few batches).
        """
        await self.run_pipeline(_Whole(handler))

    async def run_pipeline(self, stages: BatchStages[Prepared]) -> None:
        """Like ``run_batches``, with batch N+1 prepared while batch N commits (see ``BatchStages``).

        Each round positions the consumer right after ``stages.position()`` and consumes until a batch
        fails; then everything in flight is dropped and the next round starts, after a pause that grows
        with consecutive failures (``backoff_seconds``) and is reset by a committed batch.
        """
        self._failures = 0
        first = True
        while not self._stopping.is_set():
            try:
                await self._position(stages, first=first)
            except Exception as exc:
                # Typically the stages' store is down: ask again until it answers.
                await self._pause_after_failure("consumer not positioned", exc)
                continue
            first = False
            try:
                if await self._consume(stages):
                    return
            except Exception as exc:
                # The consumer itself failed (deleted, NATS gone or restarting, an ack that could not be
                # sent): the same answer as a failed batch. Crashing instead would make a short broker
                # outage look like a crash loop to whoever restarts us.
                stages.discard()
                await self._pause_after_failure("consumer failed; positioning it again", exc)
                continue
            stages.discard()
            await self._pause_after_failure("batch failed; consuming again from the last commit", None)

    async def _position(self, stages: BatchStages[Any], *, first: bool) -> None:
        """Create the consumer so that its next message is the one after the last committed one."""
        committed = await stages.position()
        if committed is None:
            if first:  # the consumer's own position is the right one
                await self.ensure_consumer()
                return
            try:
                info = await self._js.consumer_info(self._stream, self._spec.durable)
            except NotFoundError:  # gone with its ack floor: from its start again (handlers are idempotent)
                await self.ensure_consumer()
                return
            committed = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
        # Deleted and created again: a durable's start cannot be changed, and this drops every pending
        # redelivery with it. This process is the consumer's only reader.
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self._stream, self._spec.durable)
        await self._js.add_consumer(self._stream, config=self._spec.config(start_seq=committed + 1))
        log.info("consumer positioned", durable=self._spec.durable, start_seq=committed + 1)

    async def _pause_after_failure(self, what: str, exc: Exception | None) -> None:
        self._failures += 1
        delay = self._spec.delay_after(self._failures)
        log.warning(what, error=repr(exc) if exc else None, retry_in_s=delay, failures=self._failures)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _consume(self, stages: BatchStages[Prepared]) -> bool:
        """Run batches until ``stop()`` (True) or until a batch fails (False: nothing of what is in
        flight is settled, the caller positions the consumer again)."""
        puller = self._puller = _Puller(self._js, self._stream, self._spec)
        await puller.start()
        in_flight: _InFlight | None = None
        failed = False
        try:
            while not self._stopping.is_set():
                frames = await puller.next_batch(
                    self._spec.fetch_timeout_seconds, in_flight.task if in_flight else None
                )
                if frames:
                    in_flight, ok = await self._advance(stages, puller, frames, in_flight)
                elif in_flight is not None and in_flight.task.done():
                    ok, in_flight = await self._settle_commit(puller, in_flight), None
                else:
                    continue
                if not ok:
                    failed = True
                    return False
            return True
        finally:
            self._puller = None
            left = await puller.close()
            if in_flight is not None:
                # Waited for in any case: the next position is read once no commit is running.
                with contextlib.suppress(Exception):
                    failed = not await self._settle_commit(puller, in_flight) or failed
            if not failed:  # a clean stop: hand back what was not handled, for the next reader
                with contextlib.suppress(Exception):
                    await self._nak_frames(puller, left)

    async def _advance(
        self,
        stages: BatchStages[Prepared],
        puller: _Puller,
        frames: list[Frame],
        in_flight: _InFlight | None,
    ) -> tuple[_InFlight | None, bool]:
        """Prepare a batch while the previous one commits, settle that one, start this one's commit.

        Returns the commit now in flight, and False if a batch failed (nothing is in flight then)."""
        failure: Exception | None = None
        prepared: Prepared | None = None
        deliveries: list[Delivery] = []
        try:
            for start in range(0, len(frames), _DECODE_SLICE):
                for frame in frames[start : start + _DECODE_SLICE]:
                    deliveries.extend(self._decode_frame(puller, frame))
                await asyncio.sleep(0)  # let the commit in flight send its next statement
            if deliveries:
                prepared = await stages.prepare(deliveries)
        except Exception as exc:
            log.warning("batch failed", error=repr(exc), size=len(frames))
            failure = exc
        if in_flight is not None and not await self._settle_commit(puller, in_flight):
            return None, False
        if failure is not None:
            return None, False
        if not deliveries:  # every message was poison, already terminated
            return None, True
        task = asyncio.create_task(self._commit(stages, prepared, puller, frames))
        task.add_done_callback(lambda _: puller.wake())
        return _InFlight(frames, task), True

    async def _commit(
        self, stages: BatchStages[Prepared], prepared: Any, puller: _Puller, frames: list[Frame]
    ) -> None:
        async with self._heartbeat(lambda: puller.msgs(frames)):
            await stages.commit(prepared)

    async def _settle_commit(self, puller: _Puller, in_flight: _InFlight) -> bool:
        """Wait for a commit; ack its batch if it succeeded. True if it succeeded."""
        try:
            await in_flight.task
        except Exception as exc:
            log.warning("batch failed", error=repr(exc), size=len(in_flight.frames))
            return False
        self._failures = 0
        if self._spec.ack_all:
            await puller.msg(in_flight.frames[-1]).ack()
        else:
            for m in puller.msgs(in_flight.frames):
                await m.ack()
        return True

    async def _nak_frames(self, puller: _Puller, frames: list[Frame]) -> None:
        await self._nak_all(puller.msgs(frames))

    async def _nak_all(self, batch: list[Msg]) -> None:
        if batch:
            delay = self._spec.delay_after(max(_pulled(m).num_delivered for m in batch))
            for m in batch:
                await m.nak(delay=delay)

    async def _loop(self, dispatch: Callable[[list[Msg]], Awaitable[None]]) -> None:
        await self.ensure_consumer()
        psub = await self._js.pull_subscribe_bind(self._spec.durable, stream=self._stream)
        try:
            while not self._stopping.is_set():
                try:
                    batch = await psub.fetch(self._spec.batch, timeout=self._spec.fetch_timeout_seconds)
                except TimeoutError:  # nats-py raises its own and asyncio's TimeoutError for "nothing yet"
                    continue
                await dispatch(batch)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    def _decode_pulled(self, pulled: _Pulled) -> list[Delivery]:
        msg = pulled.msg
        try:
            events = decode_all(msg.headers, msg.data, pulled.stream_seq)
        except ContractError as exc:
            self._poisoned(exc, pulled.stream_seq, msg)
            return []
        return [Delivery(e, pulled.num_delivered) for e in events]

    def _decode_frame(self, puller: _Puller, frame: Frame) -> list[Delivery]:
        stream_seq, delivered = _reply_numbers(frame.reply)
        try:
            events = decode_all(_frame_headers(frame), frame.data, stream_seq)
        except ContractError as exc:
            self._poisoned(exc, stream_seq, puller.msg(frame))
            return []
        return [Delivery(e, delivered) for e in events]

    def _poisoned(self, exc: ContractError, stream_seq: int, msg: Msg) -> None:
        """A message that is not a valid event: raised again (``poison="retry"``), or terminated."""
        if self._poison == "retry":
            raise exc
        log.error("poison message terminated", stream_seq=stream_seq, error=exc.message)
        task = asyncio.get_running_loop().create_task(msg.term())
        self._settling.add(task)  # keep a reference until it is done
        task.add_done_callback(self._settling.discard)

    async def _settle(self, deliveries: list[Delivery], msg: Msg, handler: Handler) -> None:
        """Handle each event of a message in order; ack the message once all are handled. A failure
        settles the whole message (handlers are idempotent: a redelivery handles every event again)."""
        for delivery in deliveries:
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
                    async with self._heartbeat(lambda: [msg]):
                        await handler(delivery)
                except Exception as exc:
                    await self._failed(delivery, msg, exc)
                    return
        if deliveries:
            await msg.ack()

    async def _failed(self, delivery: Delivery, msg: Msg, exc: Exception) -> None:
        retryable = isinstance(exc, DeksdenflowError) and exc.retryable
        exhausted = delivery.num_delivered >= self._spec.max_deliver
        if retryable and not exhausted:
            delay = self._spec.delay_after(delivery.num_delivered)
            log.warning("handler failed; retrying", error=repr(exc), retry_in_s=delay)
            if self._on_retry is not None:
                schedule = RetrySchedule(delivery.num_delivered, self._spec.max_deliver, delay)
                try:
                    await self._on_retry(delivery, exc, schedule)
                except Exception as hook_exc:  # the notice is for people; the retry goes on without it
                    log.warning("retry notice not recorded", error=repr(hook_exc))
            await msg.nak(delay=delay)
            return
        log.error("handler failed for good", error=repr(exc), exhausted=exhausted)
        if self._on_failure is not None:
            try:
                await self._on_failure(delivery, exc)
            except Exception as hook_exc:
                # The failure could not be recorded: keep the message so it is not lost.
                log.error("failure hook failed; message kept for redelivery", error=repr(hook_exc))
                await msg.nak(delay=self._spec.delay_after(delivery.num_delivered))
                return
        await msg.term()

    @contextlib.asynccontextmanager
    async def _heartbeat(self, msgs: Callable[[], list[Msg]]) -> Any:
        async def beat() -> None:
            while True:
                await asyncio.sleep(self._spec.heartbeat_seconds)
                for m in msgs():
                    await m.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            await cancel_and_wait(task)

"""The feed: every event of the log, one message each, in log order, exactly once.

A message of the log is a decision (the events one command produced); its subject names only the first
event. Subscribers that select events by type — the workers, analytics — read the feed instead: stream
``<log>_FEED``, subjects ``<prefix>.feed.<project>.<aggregate type>.<aggregate id>.<event>``, each event
with its own binary-mode envelope, plus where it stands in the log (``Df-Log-Seq``, ``Df-Log-Index``).

The feed starts where the log stood when the feed's stream was made (``eventstore.provision``): a log
written before the feed existed keeps its earlier events where they were, one message each on the log's
subjects; the workers are not handed every request of the past again.

The writer is a pipeline over the log like the projector's (``ConsumerLoop.run_pipeline``), and, like the
projector, it keeps its position where its effect is: the feed itself. Its last message says which event
of which decision it copied last; the writer resumes right after it, and writes an event only if it is the
one that follows (the log's sequences have no holes, a decision's indexes neither). Every append to the
feed is conditional on the feed's last sequence (``Nats-Expected-Last-Sequence``), chained through a
batch: if anything else wrote to the feed meanwhile (a second writer during a rollout), or an append got
lost, the rest of the batch is refused, the batch fails, and the writer positions itself again from the
feed. So an event is never written twice, never skipped, and never out of order, however the writer is
stopped. One writer runs per deployment, like the projector: two at once stay correct, but take turns.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from deksdenflow_core.consumer import ConsumerLoop, ConsumerSpec, Delivery
from deksdenflow_core.envelope import MAX_DECISION_EVENTS, encode_headers
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.eventstore import (
    FEED_FROM_METADATA,
    JetStreamEventStore,
    nats_unavailable_as_infrastructure,
)
from deksdenflow_core.logging import get_logger
from deksdenflow_core.progress import Progress

log = get_logger(__name__)

LOG_SEQ_HEADER = "Df-Log-Seq"
LOG_INDEX_HEADER = "Df-Log-Index"
_EXPECTED_LAST = "Nats-Expected-Last-Sequence"


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One event as the feed stores it."""

    subject: str
    headers: dict[str, str]
    body: bytes
    log_seq: int
    index: int


class FeedWriter:
    """Copies the log's decisions to the feed, one message per event (``BatchStages`` of a pipeline)."""

    def __init__(
        self,
        store: JetStreamEventStore,
        *,
        durable: str,
        batch: int = 500,
        ack_wait_seconds: float = 60.0,
        stall_after_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._nc = store.connection
        self._subjects = store.subjects.feed
        # (log sequence, index) of the last event in the feed; events at or below it are not copied again
        self._copied: tuple[int, int] = (0, -1)
        self._feed_last: int | None = None  # the feed stream's last sequence; None: ask the feed
        self.progress = Progress(stall_after_seconds)
        self.log_seq = 0  # the last decision copied whole
        self.stream_last_seq = 0
        self.loop = ConsumerLoop(
            store.jetstream(),
            store.stream,
            ConsumerSpec(
                durable=durable,
                filter_subjects=[store.subjects.all],
                batch=batch,
                max_ack_pending=4 * batch,
                ack_all=True,
                ack_wait_seconds=ack_wait_seconds,
                heartbeat_seconds=max(0.5, ack_wait_seconds / 4),
                fetch_timeout_seconds=0.5,
                backoff_seconds=(0.2, 0.5, 1.0, 2.0),
                max_deliver=-1,
            ),
            poison="retry",  # a decision it cannot read is not skipped: the feed would miss its events
        )

    async def run(self) -> None:
        await self.loop.run_pipeline(self)

    # --- BatchStages ----------------------------------------------------------------------------------

    async def position(self) -> int:
        """The last decision whose events are all in the feed (the one the feed's last event belongs to
        may be copied in part: its remaining events follow)."""
        last_seq, headers = await self._last_message()
        self._feed_last = last_seq
        if headers is None:  # nothing copied yet: from the decision the feed was made to start at
            info = await self._store.stream_info(self._store.feed_stream)
            metadata = info["config"].get("metadata") or {}
            self.log_seq = int(metadata.get(FEED_FROM_METADATA, "1")) - 1
            self._copied = (self.log_seq, MAX_DECISION_EVENTS)
            return self.log_seq
        self._copied = (int(headers[LOG_SEQ_HEADER]), int(headers[LOG_INDEX_HEADER]))
        self.log_seq = self._copied[0] - 1
        return self.log_seq

    async def prepare(self, batch: list[Delivery]) -> tuple[list[FeedMessage], int]:
        """The batch's events not in the feed yet, and the batch's last decision (a message of the log
        is a decision: a batch holds each of its decisions whole)."""
        out: list[FeedMessage] = []
        copied = self._copied
        for delivery in batch:
            recorded = delivery.event
            at = (recorded.stream_seq, recorded.index)
            if at <= copied:
                continue
            if at not in ((copied[0], copied[1] + 1), (copied[0] + 1, 0)):
                # Not what follows the feed's last event (another reader took the messages between): the
                # feed must not get ahead of the log. The batch fails; the writer positions itself again.
                raise InfrastructureError(
                    f"the feed is at {copied[0]}/{copied[1]}, the batch goes on at {at[0]}/{at[1]}"
                )
            env = recorded.envelope
            headers = encode_headers(env)
            headers[LOG_SEQ_HEADER] = str(recorded.stream_seq)
            headers[LOG_INDEX_HEADER] = str(recorded.index)
            subject = self._subjects.event(env.project_id, env.aggregate_type, env.aggregate_id, env.type)
            out.append(FeedMessage(subject, headers, recorded.payload_json, *at))
            copied = at
        self._copied = copied
        return out, batch[-1].event.stream_seq

    async def commit(self, prepared: tuple[list[FeedMessage], int]) -> None:
        messages, last_decision = prepared
        if messages:
            if self._feed_last is None:
                self._feed_last, _ = await self._last_message()
            self._feed_last = await self._append(messages, self._feed_last)
        self.log_seq = max(self.log_seq, last_decision)

    def discard(self) -> None:
        self._feed_last = None

    def stalled(self) -> str | None:
        """Why the feed is stalled (decisions waiting, the feed not moving), or None."""
        reason = self.progress.stalled(time.monotonic())
        return f"feed: {reason}" if reason else None

    def observe(self, stream_last_seq: int) -> None:
        """Watch for a stall: decisions in the log that the feed does not move towards."""
        self.stream_last_seq = max(self.stream_last_seq, stream_last_seq)
        self.progress.observe(self.log_seq, self.stream_last_seq, time.monotonic())

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self.loop.stop()

    # --- the feed stream ------------------------------------------------------------------------------

    async def _append(self, messages: list[FeedMessage], feed_last: int) -> int:
        """Append ``messages`` in order, each conditional on the one before; the feed's new last sequence."""
        js = self._store.jetstream()
        with nats_unavailable_as_infrastructure("appending to the feed"):
            acks = [
                await js.publish_async(
                    m.subject, m.body, headers={**m.headers, _EXPECTED_LAST: str(feed_last + n)}
                )
                for n, m in enumerate(messages)
            ]
            try:
                async with asyncio.timeout(self._store.request_timeout):
                    done = await asyncio.gather(*acks, return_exceptions=True)
            except TimeoutError as exc:
                raise InfrastructureError("the feed did not acknowledge its appends in time") from exc
        seq = feed_last
        for message, ack in zip(messages, done, strict=True):
            if isinstance(ack, BaseException):
                raise InfrastructureError(
                    f"the feed refused event {message.log_seq}/{message.index}: {ack!r}", feed_last=feed_last
                )
            seq = ack.seq
        return seq

    async def _last_message(self) -> tuple[int, dict[str, str] | None]:
        """The feed's last sequence, and the headers of its last message (None: the feed is empty)."""
        stream = self._store.feed_stream
        info = await self._store.stream_info(stream)
        state = info["state"]
        if not state.get("messages"):
            return int(state.get("last_seq", 0)), None
        last = int(state["last_seq"])
        headers = await self._store.headers_at(stream, last)
        return last, headers

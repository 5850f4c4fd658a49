"""What request handlers reach the world through, built by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.settings import ApiSettings, EventStoreSettings, RunLimits
from fastapi import Depends, Request
from nats.js import JetStreamContext

from deksdenflow_api.connections import Connections
from deksdenflow_api.consistency import CheckpointWatcher
from deksdenflow_api.errors import HttpError
from deksdenflow_api.fanout import EventFanout
from deksdenflow_api.idempotency import IdempotencyStore
from deksdenflow_api.middleware import ApiMetrics
from deksdenflow_api.readiness import ReadModelReadiness


@dataclass
class ApiContext:
    """Settings, connections and the services built on them."""

    settings: ApiSettings
    event_store: EventStoreSettings
    connections: Connections
    watcher: CheckpointWatcher
    idempotency: IdempotencyStore
    metrics: ApiMetrics
    readiness: ReadModelReadiness
    fanout: EventFanout
    _stores: dict[int, JetStreamEventStore] = field(default_factory=dict)
    _repos: dict[int, Repository] = field(default_factory=dict)
    _provisioned: bool = False
    # The last sequence this process appended: its reads wait for it (read-your-writes without a header).
    last_appended: int = 0
    # The checkpoint at which the last such wait ran out: while it has not moved, reads do not wait again.
    _gave_up_at: int | None = None
    # The admin tokens as bytes, parsed once: every request compares its bearer token with each of them.
    admin_tokens: tuple[bytes, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.admin_tokens = tuple(token.encode() for token in self.settings.admin_tokens())

    @property
    def limits(self) -> RunLimits:
        """Run limits (the same variables the git worker's admission reads)."""
        return self.settings

    @property
    def pool(self) -> asyncpg.Pool:
        return self.connections.postgres.pool

    def _client(self) -> Any:
        client = self.connections.nats.client
        if client is None or not client.is_connected:
            raise InfrastructureError("NATS is not connected", error=self.connections.nats.last_error)
        return client

    def nats(self) -> Any:
        """The connected NATS client, or ``InfrastructureError``."""
        return self._client()

    def js(self) -> JetStreamContext:
        js: JetStreamContext = self._client().jetstream()
        return js

    async def store(self) -> JetStreamEventStore:
        """The event store on the current connection (the stream is provisioned on first use)."""
        client = self._client()
        store = self._stores.get(id(client))
        if store is None:
            store = self._stores[id(client)] = JetStreamEventStore(client, self.event_store)
        if not self._provisioned:
            await store.provision()
            self._provisioned = True
        return store

    async def repo(self) -> Repository:
        """One repository per connection, so that its cache of folded aggregates serves every request."""
        store = await self.store()
        repo = self._repos.get(id(store))
        if repo is None:
            repo = self._repos[id(store)] = Repository(store)
        return repo

    def appended(self, seq: int) -> None:
        """Remember that this process appended up to ``seq``."""
        self.last_appended = max(self.last_appended, seq)

    async def read_own_writes(self) -> None:
        """Wait (bounded) until the read model has applied what this process appended.

        Per process: a client that writes and then reads through the same API process sees its write
        without sending a header. Past the bound the read is served as it is (readiness reports a
        projector that does not keep up); ``X-Min-Event-Sequence`` is the strict form, across replicas.
        """
        seq, current = self.last_appended, self.watcher.current
        if not seq or current >= seq:
            return
        if current == self._gave_up_at:
            # The projector has not moved since a wait ran out: make one read pay the bound per stall,
            # not every read of the process (readiness reports the stall).
            self.metrics.own_write_waits.labels("skipped").inc()
            return
        if await self.watcher.wait_for(seq, self.settings.read_wait_timeout_seconds):
            self.metrics.own_write_waits.labels("caught_up").inc()
        else:
            self._gave_up_at = self.watcher.current
            self.metrics.own_write_waits.labels("timed_out").inc()

    async def at_least(self, seq: int | None) -> None:
        """Read-your-writes: wait (bounded) until the read model has applied ``seq``."""
        if not seq or self.watcher.current >= seq:
            return
        last = await (await self.store()).stream_last_seq()
        if seq > last:  # no write ever produced it: waiting cannot help
            raise HttpError(
                422,
                "unknown_sequence",
                f"sequence {seq} is beyond the end of the log ({last})",
                requested=seq,
                last=last,
            )
        if not await self.watcher.wait_for(seq, self.settings.read_wait_timeout_seconds):
            raise HttpError(
                503,
                "read_model_behind",
                f"the read model has not reached sequence {seq} yet (it is at {self.watcher.current})",
                headers={"Retry-After": "1"},
                requested=seq,
                current=self.watcher.current,
            )


def context_of(request: Request) -> ApiContext:
    """The context, for a dependency that has the request anyway.

    A dependency that reads the context this way instead of declaring ``ContextDep`` saves FastAPI a
    node of its dependency tree per request (each one costs as much as a dozen lines of our code).
    """
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain function dependency in its thread pool, a thread hop on every request.
    return context_of(request)


ContextDep = Annotated[ApiContext, Depends(get_context)]

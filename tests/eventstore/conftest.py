"""Event-store fixtures: a real NATS connection and a stream + subject prefix unique to each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.settings import EventStoreSettings
from nats.aio.client import Client as NATS


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await connect(EventStoreSettings(nats_url=nats_url), name="tests")
    yield client
    await client.drain()


@pytest.fixture
def store_settings(nats_url: str) -> EventStoreSettings:
    suffix = uuid.uuid4().hex[:10]
    return EventStoreSettings(nats_url=nats_url, stream_name=f"DF_TEST_{suffix}", subject_prefix=f"t{suffix}")


@pytest.fixture
async def store(nc: NATS, store_settings: EventStoreSettings) -> AsyncIterator[JetStreamEventStore]:
    event_store = JetStreamEventStore(nc, store_settings)
    await event_store.provision()
    yield event_store
    await nc.request(f"$JS.API.STREAM.DELETE.{store_settings.stream_name}", b"", timeout=5)


@pytest.fixture
def repo(store: JetStreamEventStore) -> Repository:
    return Repository(store)

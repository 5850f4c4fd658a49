"""The Idempotency-Key store against a real NATS: a claim taken over from an owner that looked dead is
never overwritten or freed by that first owner when it turns out to finish after all."""

from __future__ import annotations

import uuid

import pytest
from deksdenflow_api.errors import HttpError
from deksdenflow_api.idempotency import Claim, IdempotencyStore, StoredResponse
from deksdenflow_api.sealing import Sealer
from deksdenflow_core.eventstore import connect
from deksdenflow_core.settings import EventStoreSettings
from nats.aio.client import Client as NATS


def _store(bucket: str, sealer: Sealer, prefix: str) -> IdempotencyStore:
    return IdempotencyStore(bucket, 1, sealer=sealer, presence_prefix=prefix)


async def test_a_claim_taken_over_is_neither_overwritten_nor_freed_by_its_first_owner(
    nats_url: str, nc: NATS
) -> None:
    suffix = uuid.uuid4().hex[:10]
    bucket, prefix = f"IDEM_{suffix}", f"i{suffix}.svc.api.presence"
    sealer = Sealer([f"secret-{suffix}"])
    first, second = _store(bucket, sealer, prefix), _store(bucket, sealer, prefix)
    settings = EventStoreSettings(nats_url=nats_url)
    first_nc = await connect(settings, name="tests-first-api")
    try:
        slow_claim = await first.claim(first_nc, "k", "fp")
        assert isinstance(slow_claim, Claim)
    finally:
        await first_nc.close()  # the first owner looks dead: its presence subject has no responder
    taken = await second.claim(nc, "k", "fp")
    assert isinstance(taken, Claim), "the claim of an owner that does not answer is taken over at once"

    # The first owner was only slow: it comes back and records its outcome late.
    late_nc = await connect(settings, name="tests-first-api-again")
    try:
        await first.complete(late_nc, slow_claim, "fp", StoredResponse(201, b'{"from": "first"}', {}))
        await first.release(late_nc, slow_claim)
    finally:
        await late_nc.close()
    with pytest.raises(HttpError) as still_running:
        await second.claim(nc, "k", "fp")
    assert still_running.value.status == 409, "the second request still owns the key"

    await second.complete(nc, taken, "fp", StoredResponse(201, b'{"from": "second"}', {}))
    replay = await second.claim(nc, "k", "fp")
    assert replay == StoredResponse(201, b'{"from": "second"}', {})
    await nc.jetstream().delete_key_value(bucket)

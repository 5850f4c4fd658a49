"""``Idempotency-Key`` on every POST, kept durably in a JetStream key-value bucket.

The first request with a key claims it (``create`` succeeds only if the key is absent), runs, and
stores its response; a repeat with the same key and the same request gets the stored response and
appends nothing — also long after JetStream's short duplicate window. A key reused for a different
request gets 422. Only answers a retry would get again are stored (2xx, 400, 404, 422): conflicts, auth
failures and server errors leave the key free for a real retry.

Stored answers are sealed (``sealing``): one may carry a token shown once, and the bucket must never
hold a secret.

A repeat while the first request is still running gets 409, unless the claim's owner is gone. Each API
process answers on a presence subject of its own (``<prefix>.svc.api.presence.<instance>``) and every
claim names its owner; NATS answers "no responders" at once when nobody listens there, i.e. when the
owner's connection is gone (the process was killed), so its retry takes the claim over right away. An
owner that is merely slow still answers (or times out, which counts as alive). A claim older than
``STALE_CLAIM_SECONDS`` is taken over whoever owns it, so that a claim whose completion could not be
written (NATS down at that moment) does not lock the key for good.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from deksdenflow_core.eventstore import nats_unavailable_as_infrastructure
from deksdenflow_core.logging import get_logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from deksdenflow_api.errors import HttpError
from deksdenflow_api.sealing import CannotOpen, Sealer

STALE_CLAIM_SECONDS = 60.0
# How long a retry waits for a claim's owner to say it is alive; no answer in time counts as alive.
OWNER_PING_SECONDS = 2.0
_CLAIM_ATTEMPTS = 3


_log = get_logger(__name__)
# JetStream's error code for a conditional write whose expected revision is not the last one.
_WRONG_LAST_SEQUENCE = 10071


@dataclass(frozen=True)
class Claim:
    """This request owns ``key``, as of the claim's ``revision`` in the bucket."""

    key: str
    revision: int


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


def _in_progress() -> HttpError:
    return HttpError(
        409,
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is still running",
        headers={"Retry-After": "1"},
    )


class IdempotencyStore:
    """Claims and sealed stored responses, keyed by principal + method + path + Idempotency-Key."""

    def __init__(self, bucket: str, ttl_days: int, *, sealer: Sealer, presence_prefix: str) -> None:
        self.bucket = bucket
        self.instance_id = uuid.uuid4().hex
        self._ttl = ttl_days * 86400.0
        self._sealer = sealer
        self._presence_prefix = presence_prefix
        self._kv: KeyValue | None = None
        self._present_on: NATS | None = None

    @property
    def presence_subject(self) -> str:
        """Where this process answers while it is alive."""
        return f"{self._presence_prefix}.{self.instance_id}"

    async def _open(self, nc: NATS) -> KeyValue:
        if self._present_on is not nc:
            # Listen before any claim of ours is written, so that a claim never names a silent owner.
            async def alive(msg: Msg) -> None:
                await msg.respond(b"alive")

            await nc.subscribe(self.presence_subject, cb=alive)
            self._present_on, self._kv = nc, None
        if self._kv is None:
            js = nc.jetstream()
            try:
                self._kv = await js.key_value(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(bucket=self.bucket, history=1, ttl=self._ttl, storage=StorageType.FILE)
                )
        return self._kv

    @staticmethod
    def key_for(principal: str, method: str, path: str, key: str) -> str:
        return hashlib.sha256(f"{principal}\n{method}\n{path}\n{key}".encode()).hexdigest()

    async def claim(self, nc: NATS, key: str, fingerprint: str) -> StoredResponse | Claim:
        """A :class:`Claim` if this request owns the key now; the stored response if it was answered
        before."""
        with nats_unavailable_as_infrastructure("the Idempotency-Key store"):
            kv = await self._open(nc)
            claim = json.dumps(
                {"state": "pending", "fingerprint": fingerprint, "at": time.time(), "owner": self.instance_id}
            ).encode()
            for _ in range(_CLAIM_ATTEMPTS):
                try:
                    return Claim(key, await kv.create(key, claim))
                except nats.js.errors.KeyWrongLastSequenceError:
                    pass
                try:
                    entry = await kv.get(key)
                except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                    continue  # released between our create and our get: claim it again
                record: dict[str, Any] = json.loads(entry.value or b"{}")
                if record.get("fingerprint") != fingerprint:
                    raise HttpError(
                        422, "idempotency_key_reused", "this Idempotency-Key was used for a different request"
                    )
                if record.get("state") == "done":
                    return self._stored(key, record)
                if not await self._abandoned(nc, record):
                    raise _in_progress()
                try:  # only one taker wins the revision check
                    return Claim(key, await kv.update(key, claim, last=entry.revision))
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            raise _in_progress()

    async def _abandoned(self, nc: NATS, record: dict[str, Any]) -> bool:
        """Whether a pending claim's owner is gone (or the claim is too old to be waited for)."""
        if time.time() - float(record.get("at", 0)) > STALE_CLAIM_SECONDS:
            return True
        owner = record.get("owner")
        if not isinstance(owner, str) or owner == self.instance_id:
            return False  # a claim of an older version (waits for its age), or one of our own requests
        try:
            await nc.request(f"{self._presence_prefix}.{owner}", b"", timeout=OWNER_PING_SECONDS)
        except nats.errors.NoRespondersError:
            return True
        except nats.errors.TimeoutError:
            return False  # alive but busy, or the network is slow: keep waiting
        return False

    def _stored(self, key: str, record: dict[str, Any]) -> StoredResponse:
        if "answer" not in record:  # written before answers were sealed
            return StoredResponse(
                status=int(record["status"]),
                body=base64.b64decode(record["body"]),
                headers=dict(record["headers"]),
            )
        try:
            answer = json.loads(self._sealer.open(record["answer"], key.encode()))
        except CannotOpen as exc:
            raise HttpError(
                409,
                "idempotency_answer_unreadable",
                "the answer stored for this Idempotency-Key was sealed with a DEKSDENFLOW_IDEMPOTENCY_SECRET "
                "this API does not have; the request was done: send a new Idempotency-Key only if you mean "
                "to do it again",
            ) from exc
        return StoredResponse(
            status=int(answer["status"]),
            body=base64.b64decode(answer["body"]),
            headers=dict(answer["headers"]),
        )

    async def complete(self, nc: NATS, claim: Claim, fingerprint: str, response: StoredResponse) -> None:
        """Store the answer, if the claim is still ours (a request whose claim was taken over after its
        owner looked dead must not overwrite the answer of the request that took it)."""
        key = claim.key
        answer = {
            "status": response.status,
            "body": base64.b64encode(response.body).decode(),
            "headers": response.headers,
        }
        record = {
            "state": "done",
            "fingerprint": fingerprint,
            "answer": self._sealer.seal(json.dumps(answer).encode(), key.encode()),
            "at": time.time(),
        }
        with nats_unavailable_as_infrastructure("the Idempotency-Key store"):
            kv = await self._open(nc)
            try:
                await kv.update(key, json.dumps(record).encode(), last=claim.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                _log.warning("Idempotency-Key claim was taken over meanwhile; its answer is not stored")

    async def release(self, nc: NATS, claim: Claim) -> None:
        """Forget a claim whose request failed on our side, so that a retry can run (if it is still
        ours: never free a claim another request took over)."""
        with nats_unavailable_as_infrastructure("the Idempotency-Key store"):
            kv = await self._open(nc)
            try:
                await kv.delete(claim.key, last=claim.revision)
            except nats.js.errors.BadRequestError as exc:  # nats-py does not map this one to its own class
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise

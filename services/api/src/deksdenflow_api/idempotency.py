"""``Idempotency-Key`` on every POST, kept durably in a JetStream key-value bucket.

The first request with a key claims it (``create`` succeeds only if the key is absent), runs, and
stores its response; a repeat with the same key and the same request gets the stored response and
appends nothing — also long after JetStream's short duplicate window. A repeat while the first is
still running gets 409; a key reused for a different request gets 422. Claims left by a crashed API
process expire after ``STALE_CLAIM_SECONDS``. Only answers a retry would get again are stored (2xx, 400,
404, 422): conflicts, auth failures and server errors leave the key free for a real retry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from deksdenflow_api.errors import HttpError

STALE_CLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


class IdempotencyStore:
    """Claims and stored responses, keyed by principal + method + path + Idempotency-Key."""

    def __init__(self, bucket: str, ttl_days: int) -> None:
        self.bucket = bucket
        self._ttl = ttl_days * 86400.0
        self._kv: KeyValue | None = None

    async def _open(self, js: JetStreamContext) -> KeyValue:
        if self._kv is None:
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

    async def claim(self, js: JetStreamContext, key: str, fingerprint: str) -> StoredResponse | None:
        """None if this request owns the key now; the stored response if it was answered before."""
        kv = await self._open(js)
        claim = json.dumps({"state": "pending", "fingerprint": fingerprint, "at": time.time()}).encode()
        try:
            await kv.create(key, claim)
            return None
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        entry = await kv.get(key)
        record: dict[str, Any] = json.loads(entry.value or b"{}")
        if record.get("fingerprint") != fingerprint:
            raise HttpError(
                422, "idempotency_key_reused", "this Idempotency-Key was used for a different request"
            )
        if record.get("state") == "done":
            return StoredResponse(
                status=int(record["status"]),
                body=base64.b64decode(record["body"]),
                headers=dict(record["headers"]),
            )
        if time.time() - float(record.get("at", 0)) > STALE_CLAIM_SECONDS:
            try:  # the claimant died: take the key over (only one taker wins the revision check)
                await kv.update(key, claim, last=entry.revision)
                return None
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
        raise HttpError(
            409,
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still running",
            headers={"Retry-After": "1"},
        )

    async def complete(
        self, js: JetStreamContext, key: str, fingerprint: str, response: StoredResponse
    ) -> None:
        kv = await self._open(js)
        record = {
            "state": "done",
            "fingerprint": fingerprint,
            "status": response.status,
            "body": base64.b64encode(response.body).decode(),
            "headers": response.headers,
            "at": time.time(),
        }
        await kv.put(key, json.dumps(record).encode())

    async def release(self, js: JetStreamContext, key: str) -> None:
        """Forget a claim whose request failed on our side, so that a retry can run."""
        kv = await self._open(js)
        await kv.delete(key)

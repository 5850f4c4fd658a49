"""Answers kept for ``Idempotency-Key`` replays are sealed (AES-256-GCM) with a key the bucket never sees.

An answer can carry a secret shown once (a new project token, a project's webhook secret), and a replay
must answer byte for byte as the first time did. So the whole stored answer is encrypted with a key
derived (HKDF-SHA256) from ``DEKSDENFLOW_IDEMPOTENCY_SECRET``; the KV bucket holds only ciphertext, the
id of the key and a nonce. The KV key is the associated data, so a sealed answer cannot be moved to
another key. Several secrets (comma-separated) allow rotation: the first seals, every one opens.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"deksdenflow/idempotency-answer/v1"
_NONCE_BYTES = 12


class CannotOpen(Exception):
    """The sealed answer was sealed with a key this process does not have, or was tampered with."""


def _derive(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())


class Sealer:
    """Seals and opens stored answers with keys derived from the configured secrets."""

    def __init__(self, secrets: list[str]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        keys = [_derive(secret) for secret in secrets]
        # A short public id per key, so that opening picks the right key without trying each.
        self._keys = {hashlib.sha256(b"kid" + key).hexdigest()[:16]: AESGCM(key) for key in keys}
        self._sealing_kid = next(iter(self._keys))

    @classmethod
    def ephemeral(cls) -> Sealer:
        """A sealer with a random key of this process only (answers replay until it restarts)."""
        return cls([base64.b64encode(os.urandom(32)).decode()])

    def seal(self, plaintext: bytes, associated: bytes) -> dict[str, str]:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._sealing_kid].encrypt(nonce, plaintext, associated)
        return {
            "kid": self._sealing_kid,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }

    def open(self, record: dict[str, Any], associated: bytes) -> bytes:
        """The plaintext of ``seal``'s record, or ``CannotOpen``."""
        key = self._keys.get(str(record.get("kid")))
        if key is None:
            raise CannotOpen("sealed with a key that is not configured here")
        try:
            return key.decrypt(
                base64.b64decode(record["nonce"]), base64.b64decode(record["sealed"]), associated
            )
        except (InvalidTag, KeyError, ValueError) as exc:
            raise CannotOpen("the sealed answer does not open with its key") from exc

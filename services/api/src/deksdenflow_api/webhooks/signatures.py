"""Authenticating GitHub and GitLab webhook deliveries (pure: bytes and header values in, a verdict out).

Authentication is checked against *every* configured secret without stopping at the first match: the
index of the matching secret says which one is in use (useful while rotating), and the time taken does
not say which one matched. The body is parsed only after it is authenticated, by the caller's choice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Final, Literal

__all__ = [
    "GITLAB_SIGNATURE_TOLERANCE_SECONDS",
    "decode_gitlab_signing_token",
    "github_signature",
    "verify_github_signature",
    "verify_gitlab_signature",
    "verify_gitlab_token",
]

# --- GitHub signature ----------------------------------------------------------------------------------

_GITHUB_PREFIX: Final = "sha256="


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` signed with ``secret``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _GITHUB_PREFIX + digest


def verify_github_signature(secrets: Sequence[str], body: bytes, header: str | None) -> int | None:
    """Index of the secret that signed ``body`` according to ``X-Hub-Signature-256``; None if none did.

    Every secret is compared, in constant time, even after a match. Empty secrets never match: an empty
    HMAC key is something anyone can sign with. A missing header, the legacy ``sha1=`` form or a garbled
    value is simply no match.
    """
    if not header:
        return None
    given = header.strip().encode("utf-8", errors="replace")
    if not given.startswith(_GITHUB_PREFIX.encode()):
        return None
    matched: int | None = None
    for index, secret in enumerate(secrets):
        expected = github_signature(secret, body).encode()
        if hmac.compare_digest(expected, given) and secret and matched is None:
            matched = index
    return matched


# --- GitLab token and signature ------------------------------------------------------------------------


def verify_gitlab_token(secrets: Sequence[str], token: str | None) -> int | None:
    """Index of the secret equal to ``X-Gitlab-Token``; None if none is.

    GitLab's secret token is a shared password sent in clear, so equality is all there is to check; it
    is compared in constant time against every secret. Empty secrets never match.
    """
    if not token:
        return None
    given = token.encode("utf-8", errors="replace")
    matched: int | None = None
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(secret.encode(), given) and secret and matched is None:
            matched = index
    return matched


GITLAB_SIGNATURE_TOLERANCE_SECONDS: Final = 5 * 60
_WHSEC_PREFIX: Final = "whsec_"


def decode_gitlab_signing_token(secret: str) -> bytes:
    """The HMAC key inside a GitLab signing token (``whsec_<base64>``), as the Standard Webhooks spec says.

    The ``whsec_`` prefix is optional here, as in the Standard Webhooks reference libraries. Raises
    :class:`ValueError` when the rest is not base64 or is empty, so settings can reject a mistyped token at
    start-up instead of every delivery failing later.
    """
    encoded = secret.strip().removeprefix(_WHSEC_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a GitLab signing token must be 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("a GitLab signing token must not be empty")
    return key


def verify_gitlab_signature(
    secrets: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> int | Literal["absent"] | None:
    """Index of the signing token that signed this GitLab delivery; None if none did; "absent" if unsigned.

    Follows GitLab's webhook *signing token* (``whsec_`` + base64 of a 32-byte key), added by
    gitlab-org/gitlab!230944 behind the ``webhook_signing_token`` feature flag (rollout:
    gitlab-org/gitlab#596374; integrations give GitLab 19.0 as the first release with it; user docs:
    https://docs.gitlab.com/user/project/integrations/webhooks/#signing-tokens). That MR states the format
    is the Standard Webhooks specification (https://www.standardwebhooks.com/):

    * ``webhook-id``: the delivery id (equal to ``Idempotency-Key``);
    * ``webhook-timestamp``: integer Unix seconds;
    * ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries, the HMAC keyed with the
      base64-decoded token and computed over ``"{webhook-id}.{webhook-timestamp}.{raw body}"``.

    "absent" means no ``webhook-signature`` header (a hook without a signing token, or a GitLab older than
    the feature): the caller decides whether ``X-Gitlab-Token`` is enough. A signature with a missing id or
    timestamp, a timestamp more than five minutes from ``now`` (replay), or no matching entry is None.
    Header names are matched case-insensitively. Tokens that are not valid base64 never match.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get("webhook-signature", "").strip()
    if not signature:
        return "absent"
    delivery_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    if not delivery_id or not (timestamp.isascii() and timestamp.isdigit()):
        return None
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > GITLAB_SIGNATURE_TOLERANCE_SECONDS:
        return None
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    given = [
        entry.removeprefix("v1,").encode("utf-8", errors="replace")
        for entry in signature.split()
        if entry.startswith("v1,")
    ]
    matched: int | None = None
    for index, secret in enumerate(secrets):
        try:
            key = decode_gitlab_signing_token(secret)
        except ValueError:
            continue
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        hit = False
        for candidate in given:
            hit |= hmac.compare_digest(expected, candidate)
        if hit and matched is None:
            matched = index
    return matched

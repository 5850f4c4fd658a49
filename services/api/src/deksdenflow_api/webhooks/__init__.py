"""GitHub and GitLab webhooks: their dialects (pure parsing and authentication) and the run a delivery
matches.

The dialects take raw body bytes and header values and give a :class:`WebhookSignal`, with no I/O, so the
route can verify and parse before anything is recorded, and tests can feed recorded deliveries byte for
byte (an import rule keeps them pure). ``matching`` reads the read model to find the run a signal is about;
``routes/webhooks.py`` only wires the two to HTTP and records the delivery.
"""

from deksdenflow_api.webhooks.github import parse_github
from deksdenflow_api.webhooks.gitlab import parse_gitlab
from deksdenflow_api.webhooks.signal import (
    InvalidWebhook,
    Match,
    SignalKind,
    WebhookSignal,
    normalise_ci_state,
)
from deksdenflow_api.webhooks.signatures import (
    GITLAB_SIGNATURE_TOLERANCE_SECONDS,
    decode_gitlab_signing_token,
    github_signature,
    verify_github_signature,
    verify_gitlab_signature,
    verify_gitlab_token,
)

__all__ = [
    "GITLAB_SIGNATURE_TOLERANCE_SECONDS",
    "InvalidWebhook",
    "Match",
    "SignalKind",
    "WebhookSignal",
    "decode_gitlab_signing_token",
    "github_signature",
    "normalise_ci_state",
    "parse_github",
    "parse_gitlab",
    "verify_github_signature",
    "verify_gitlab_signature",
    "verify_gitlab_token",
]

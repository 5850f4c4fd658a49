"""What a webhook delivery says, in the same words whichever forge sent it (pure: no I/O).

Parsing never trusts the shape: a delivery that is not a JSON object, or lacks the object an event is
about, is an :class:`InvalidWebhook`; an event type we do not act on is *not* an error but a signal of
kind ``"other"`` with ``ignored_reason`` set, so the edge can answer 2xx and providers do not disable the
hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import ReviewFeedback
from deksdenflow_core.domain.provider import CiResult, ProviderName
from deksdenflow_core.errors import InvalidCommand

SignalKind = Literal["ci", "pull_request", "review", "ping", "other"]

__all__ = ["InvalidWebhook", "Match", "SignalKind", "WebhookSignal", "normalise_ci_state"]


class InvalidWebhook(InvalidCommand):
    """A delivery that cannot be read: not JSON, not an object, or missing what its event is about.

    Retrying the same bytes cannot help, so the edge answers 4xx and records nothing.
    """

    code = "invalid_webhook"


@dataclass(frozen=True, slots=True)
class WebhookSignal:
    """What one delivery says, in the same words whichever forge sent it.

    Every field has a neutral default ("" / 0 / False / None) so that a consumer never has to ask which
    provider or event produced the signal before reading a field.
    """

    provider: ProviderName
    event: str
    action: str = ""
    kind: SignalKind = "other"
    repository: str = ""
    repository_urls: tuple[str, ...] = ()
    branch: str = ""
    head_sha: str = ""
    protocol_run_id: str = ""
    ci_state: CiResult | None = None
    raw_status: str = ""
    run_url: str = ""
    ci_name: str = ""
    pr_number: int = 0
    pr_url: str = ""
    pr_merged: bool = False
    pr_closed: bool = False
    merge_commit_sha: str = ""
    ignored_reason: str = ""
    # The CI run a "ci" signal is about, to put its reports back in order: the line of CI on the commit
    # ("<event>:<name>"), the run's own id, GitHub's run_attempt, and the latest time the payload gives
    # (ms since the epoch). 0 / "" when the payload does not say.
    ci_check: str = ""
    ci_run_id: int = 0
    ci_run_attempt: int = 0
    ci_updated_at_ms: int = 0
    # What a reviewer said, for a "review" signal (its review id, verdict, words and the commit looked at);
    # None for every other kind and for a review delivery that is ignored.
    review: ReviewFeedback | None = None


# --- CI states -----------------------------------------------------------------------------------------

_RUNNING: Final = frozenset(
    {
        "in_progress",
        "queued",
        "pending",
        "running",
        "requested",
        "waiting",
        "created",
        "waiting_for_resource",
        "preparing",
        "scheduled",
    }
)
_SUCCESS: Final = frozenset({"success", "neutral", "passed"})
_FAILURE: Final = frozenset(
    {
        "failure",
        "failed",
        "timed_out",
        "cancelled",
        "canceled",
        "error",
        "action_required",
        "startup_failure",
    }
)


def normalise_ci_state(raw: str) -> CiResult | None:
    """GitHub's and GitLab's many CI words reduced to the three we act on; None for the rest.

    "skipped", "manual", "stale" and unknown words are None on purpose: acting on them would either mark
    a run green that never ran or fail one that is merely waiting for a human.
    """
    word = raw.strip().lower()
    if word in _RUNNING:
        return "running"
    if word in _SUCCESS:
        return "success"
    if word in _FAILURE:
        return "failure"
    return None


@dataclass(frozen=True)
class Match:
    """The run a delivery applies to (or why none), and the projects whose secret may sign it: the owner
    of the matched run only; when no run matches (the delivery changes nothing), those of its repository."""

    protocol_run_id: str
    project_id: str
    ignored_reason: str
    projects: tuple[str, ...]

"""Authenticating and normalising GitHub and GitLab webhook deliveries.

Pure: raw body bytes and header values in, a :class:`WebhookSignal` out. No I/O, so the API edge can
verify and parse before anything is recorded, and tests can feed recorded deliveries byte for byte.

Authentication is checked against *every* configured secret without stopping at the first match: the
index of the matching secret says which one is in use (useful while rotating), and the time taken does
not say which one matched. The body is parsed only after it is authenticated, by the caller's choice.

Parsing never trusts the shape: a delivery that is not a JSON object, or lacks the object an event is
about, is an :class:`InvalidWebhook`; an event type we do not act on is *not* an error but a signal of
kind ``"other"`` with ``ignored_reason`` set, so the edge can answer 2xx and providers do not disable the
hook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import parse_qs

from deksdenflow_core.errors import InvalidCommand

Provider = Literal["github", "gitlab"]
SignalKind = Literal["ci", "pull_request", "ping", "other"]
CiState = Literal["running", "success", "failure"]

__all__ = [
    "GITLAB_SIGNATURE_TOLERANCE_SECONDS",
    "CiState",
    "InvalidWebhook",
    "Provider",
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

    provider: Provider
    event: str
    action: str = ""
    kind: SignalKind = "other"
    repository: str = ""
    repository_urls: tuple[str, ...] = ()
    branch: str = ""
    head_sha: str = ""
    protocol_run_id: str = ""
    ci_state: CiState | None = None
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


def normalise_ci_state(raw: str) -> CiState | None:
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


# --- parsing helpers -----------------------------------------------------------------------------------


def _load(body: bytes, provider: Provider, event: str) -> dict[str, Any]:
    """The body as a JSON object, or InvalidWebhook naming what is wrong with it."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidWebhook(
            f"{provider} webhook body is not valid JSON: {exc}", provider=provider, event=event
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidWebhook(
            f"{provider} webhook body must be a JSON object, got {type(payload).__name__}",
            provider=provider,
            event=event,
        )
    return payload


def _object(payload: Mapping[str, Any], key: str, provider: Provider, event: str) -> dict[str, Any]:
    """The nested object ``key`` an event is about; InvalidWebhook when it is missing."""
    value = payload.get(key)
    if not isinstance(value, dict):
        raise InvalidWebhook(
            f"{provider} {event!r} delivery has no {key!r} object", provider=provider, event=event
        )
    return value


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: optional nested blocks read like present ones."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    """Strings as they are; numbers as text (ids); null and anything else as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return 0


def _millis(values: Iterable[Any]) -> int:
    """The latest of the timestamps given, in ms since the epoch; 0 when none can be read.

    GitHub writes ISO 8601 (``2025-01-10T10:02:03Z``), GitLab ``2025-01-10 10:02:03 UTC`` or ISO 8601
    with an offset; a time without a zone is taken as UTC.
    """
    latest = 0
    for value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        text = value.strip()
        if text.endswith(" UTC"):
            text = text.removesuffix(" UTC") + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        latest = max(latest, int(moment.timestamp() * 1000))
    return latest


def _position(check: str, block: Mapping[str, Any], times: Sequence[str], attempt: int = 0) -> dict[str, Any]:
    """The CI run fields of a signal: its check, the block's id, ``attempt`` and its latest time."""
    return {
        "ci_check": check,
        "ci_run_id": _int(block.get("id")),
        "ci_run_attempt": attempt,
        "ci_updated_at_ms": _millis(block.get(key) for key in times),
    }


def _branch(ref: str) -> str:
    """A branch name from a ref: ``refs/heads/`` stripped; tags and other refs are not branches ("")."""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if ref.startswith("refs/"):
        return ""
    return ref


def _urls(block: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for key in keys:
        url = _str(block.get(key))
        if url:
            seen[url] = None
    return tuple(seen)


def _protocol_run_id(payload: Mapping[str, Any]) -> str:
    value = payload.get("protocol_run_id")
    return value if isinstance(value, str) else ""


def _ci_ignored(state: CiState | None, raw: str) -> str:
    return "" if state is not None else f"CI state {raw!r} is not acted on"


def _completed_word(block: Mapping[str, Any], fallback: str = "") -> str:
    """GitHub's own word for a run: the conclusion once completed, else the status (or ``fallback``)."""
    status = _str(block.get("status"))
    conclusion = _str(block.get("conclusion"))
    if status == "completed" and conclusion:
        return conclusion
    return status or fallback


# --- GitHub --------------------------------------------------------------------------------------------

_GITHUB_REPO_URLS: Final = ("clone_url", "ssh_url", "html_url", "git_url")


def parse_github(event: str, body: bytes, content_type: str = "") -> WebhookSignal:
    """A GitHub delivery (``X-GitHub-Event`` value, raw body and ``Content-Type``) as a
    :class:`WebhookSignal`.

    GitHub sends either JSON or, by default for a new hook, ``application/x-www-form-urlencoded`` with the
    JSON in the ``payload`` field; both read the same. (The signature covers the raw body as sent, so it is
    checked on ``body`` itself, never on the JSON taken out of it.)
    """
    event = event.strip()
    if not event:
        raise InvalidWebhook("github webhook has no X-GitHub-Event header", provider="github", event="")
    payload = _load(_github_json(body, content_type, event), "github", event)
    repo = _dict(payload.get("repository"))
    base = WebhookSignal(
        provider="github",
        event=event,
        action=_str(payload.get("action")),
        repository=_str(repo.get("full_name")),
        repository_urls=_urls(repo, _GITHUB_REPO_URLS),
        protocol_run_id=_protocol_run_id(payload),
    )
    match event:
        case "ping":
            return replace(base, kind="ping", ignored_reason="github ping: the hook is set up, nothing to do")
        case "workflow_run":
            return _github_workflow_run(base, payload)
        case "check_suite":
            return _github_check_suite(base, payload)
        case "check_run":
            return _github_check_run(base, payload)
        case "status":
            return _github_status(base, payload)
        case "pull_request":
            return _github_pull_request(base, payload)
        case _:
            return replace(base, kind="other", ignored_reason=f"github event {event!r} is not handled")


def _ci(
    base: WebhookSignal,
    *,
    raw: str,
    branch: str,
    head_sha: str,
    run_url: str,
    name: str,
    state: CiState | None = None,
    position: Mapping[str, Any] | None = None,
) -> WebhookSignal:
    state = state or normalise_ci_state(raw)
    return replace(
        base,
        **(position or {}),
        kind="ci",
        ci_state=state,
        raw_status=raw,
        branch=branch,
        head_sha=head_sha,
        run_url=run_url,
        ci_name=name,
        ignored_reason=_ci_ignored(state, raw),
    )


_FORM: Final = "application/x-www-form-urlencoded"


def _github_json(body: bytes, content_type: str, event: str) -> bytes:
    """The JSON of a delivery: the body itself, or the ``payload`` field of a form-encoded one."""
    if content_type.split(";", 1)[0].strip().lower() != _FORM:
        return body
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook(
            f"github form-encoded webhook body cannot be decoded: {exc}", provider="github", event=event
        ) from exc
    values = fields.get("payload", [])
    if len(values) != 1:
        raise InvalidWebhook(
            "github form-encoded webhook body must have exactly one 'payload' field",
            provider="github",
            event=event,
        )
    return values[0].encode()


def _github_workflow_run(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    run = _object(payload, "workflow_run", "github", base.event)
    name = _str(run.get("name")) or _str(_dict(payload.get("workflow")).get("name"))
    times = ("created_at", "run_started_at", "updated_at")
    return _ci(
        base,
        raw=_completed_word(run),
        branch=_branch(_str(run.get("head_branch"))),
        head_sha=_str(run.get("head_sha")),
        run_url=_str(run.get("html_url")),
        name=name,
        position=_position(
            f"workflow_run:{name or _str(run.get('path'))}", run, times, _int(run.get("run_attempt"))
        ),
    )


def _github_check_suite(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    suite = _object(payload, "check_suite", "github", base.event)
    raw = _completed_word(suite, fallback=base.action)
    # A (re)requested suite is about to run, whatever status word (if any) it carries yet.
    requested = base.action in {"requested", "rerequested"} and _str(suite.get("status")) != "completed"
    app = _dict(suite.get("app"))
    name = _str(app.get("name")) or "check_suite"
    return _ci(
        base,
        raw=raw,
        state="running" if requested else None,
        branch=_branch(_str(suite.get("head_branch"))),
        head_sha=_str(suite.get("head_sha")),
        run_url=_str(suite.get("html_url")),
        name=name,
        position=_position(f"check_suite:{name}", suite, ("created_at", "updated_at")),
    )


def _github_check_run(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    run = _object(payload, "check_run", "github", base.event)
    suite = _dict(run.get("check_suite"))
    name = _str(run.get("name"))
    return _ci(
        base,
        raw=_completed_word(run),
        branch=_branch(_str(suite.get("head_branch"))),
        head_sha=_str(run.get("head_sha")) or _str(suite.get("head_sha")),
        run_url=_str(run.get("html_url")) or _str(run.get("details_url")),
        name=name,
        position=_position(f"check_run:{name}", run, ("started_at", "completed_at")),
    )


def _github_status(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    for key in ("sha", "state"):
        if not isinstance(payload.get(key), str):
            raise InvalidWebhook(
                f"github 'status' delivery has no {key!r} string", provider="github", event=base.event
            )
    sha = _str(payload.get("sha"))
    context = _str(payload.get("context"))
    return _ci(
        base,
        raw=_str(payload.get("state")),
        branch=_status_branch(payload.get("branches"), sha),
        head_sha=sha,
        run_url=_str(payload.get("target_url")),
        name=context,
        position=_position(f"status:{context}", payload, ("created_at", "updated_at")),
    )


def _status_branch(branches: Any, sha: str) -> str:
    """The branch a commit status is about.

    GitHub lists up to ten branches *containing* the commit, not only those it heads. One branch is
    unambiguous; among several, only a branch whose tip is the commit counts, and only if exactly one is.
    """
    if not isinstance(branches, list):
        return ""
    entries = [entry for entry in branches if isinstance(entry, dict)]
    if len(entries) == 1:
        return _str(entries[0].get("name"))
    heads = [entry for entry in entries if _str(_dict(entry.get("commit")).get("sha")) == sha]
    return _str(heads[0].get("name")) if len(heads) == 1 else ""


def _github_pull_request(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    pr = _object(payload, "pull_request", "github", base.event)
    head = _dict(pr.get("head"))
    closed = base.action == "closed"
    merged = closed and pr.get("merged") is True
    return replace(
        base,
        kind="pull_request",
        branch=_branch(_str(head.get("ref"))),
        head_sha=_str(head.get("sha")),
        pr_number=_int(payload.get("number")) or _int(pr.get("number")),
        pr_url=_str(pr.get("html_url")),
        pr_merged=merged,
        pr_closed=closed and not merged,
        # GitHub fills merge_commit_sha with a throw-away test merge while the PR is open; it only names
        # the commit on the base branch once the PR is merged.
        merge_commit_sha=_str(pr.get("merge_commit_sha")) if merged else "",
        ignored_reason=""
        if closed
        else f"pull request action {base.action!r} is neither a merge nor a close",
    )


# --- GitLab --------------------------------------------------------------------------------------------

_GITLAB_REPO_URLS: Final = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")


def _gitlab_kind_from_header(header: str) -> str:
    """``"Merge Request Hook"`` -> ``"merge_request"``: only used when the body names no object_kind."""
    words = header.strip().removesuffix(" Hook").strip()
    return "_".join(words.lower().split())


def parse_gitlab(event_header: str, body: bytes) -> WebhookSignal:
    """A GitLab delivery (``X-Gitlab-Event`` value and raw body) as a :class:`WebhookSignal`.

    The body's ``object_kind`` is the authority (the header is free text that has changed over versions,
    e.g. system hooks); the header only names the event when the body does not.
    """
    header_kind = _gitlab_kind_from_header(event_header)
    payload = _load(body, "gitlab", header_kind)
    event = _str(payload.get("object_kind")) or header_kind
    if not event:
        raise InvalidWebhook(
            "gitlab webhook names no event: no object_kind in the body and no X-Gitlab-Event header",
            provider="gitlab",
            event="",
        )
    project = _dict(payload.get("project"))
    base = WebhookSignal(
        provider="gitlab",
        event=event,
        repository=_str(project.get("path_with_namespace")),
        repository_urls=_urls(project, _GITLAB_REPO_URLS),
        protocol_run_id=_protocol_run_id(payload),
    )
    match event:
        case "pipeline":
            return _gitlab_pipeline(base, payload, project)
        case "merge_request":
            return _gitlab_merge_request(base, payload)
        case _:
            attributes = _dict(payload.get("object_attributes"))
            return replace(
                base,
                action=_str(attributes.get("action")),
                kind="other",
                ignored_reason=f"gitlab event {event!r} is not handled",
            )


def _gitlab_pipeline(
    base: WebhookSignal, payload: Mapping[str, Any], project: Mapping[str, Any]
) -> WebhookSignal:
    attributes = _object(payload, "object_attributes", "gitlab", base.event)
    tag = attributes.get("tag") is True
    ref = _str(attributes.get("ref"))
    branch = "" if tag else _branch(ref)
    merge_request = _dict(payload.get("merge_request"))
    if not branch and not tag and merge_request:
        # Merge request pipelines run on refs/merge-requests/<iid>/head; the branch is the MR's source.
        branch = _str(merge_request.get("source_branch"))
    pipeline_id = _str(attributes.get("id"))
    run_url = _str(attributes.get("url"))
    web_url = _str(project.get("web_url"))
    if not run_url and web_url and pipeline_id:
        run_url = f"{web_url.rstrip('/')}/-/pipelines/{pipeline_id}"
    # A retried job turns a finished pipeline (same id) back to running: the jobs' own times tell that
    # report apart from a late one of the first try.
    jobs = [_dict(job) for job in payload.get("builds") or () if isinstance(job, dict)]
    position = _position(
        f"pipeline:{_str(attributes.get('name')) or _str(attributes.get('source'))}",
        attributes,
        ("created_at", "finished_at"),
    )
    position["ci_updated_at_ms"] = max(
        position["ci_updated_at_ms"],
        _millis(job.get(key) for job in jobs for key in ("created_at", "started_at", "finished_at")),
    )
    signal = _ci(
        base,
        raw=_str(attributes.get("status")),
        branch=branch,
        head_sha=_str(attributes.get("sha")),
        run_url=run_url,
        name="pipeline",
        position=position,
    )
    if tag:
        return replace(signal, ignored_reason=f"tag pipeline (tag {ref!r}): only branches are followed")
    return signal


def _gitlab_merge_request(base: WebhookSignal, payload: Mapping[str, Any]) -> WebhookSignal:
    attributes = _object(payload, "object_attributes", "gitlab", base.event)
    action = _str(attributes.get("action"))
    state = _str(attributes.get("state"))
    merged = action == "merge" or state == "merged"
    closed = not merged and (action == "close" or state == "closed")
    return replace(
        base,
        action=action,
        kind="pull_request",
        branch=_branch(_str(attributes.get("source_branch"))),
        head_sha=_str(_dict(attributes.get("last_commit")).get("id")),
        pr_number=_int(attributes.get("iid")),
        pr_url=_str(attributes.get("url")),
        pr_merged=merged,
        pr_closed=closed,
        merge_commit_sha=_str(attributes.get("merge_commit_sha")) if merged else "",
        ignored_reason=""
        if merged or closed
        else f"merge request action {action!r} (state {state!r}) is neither a merge nor a close",
    )

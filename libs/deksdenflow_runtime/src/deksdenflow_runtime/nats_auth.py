"""Who may do what on the embedded NATS: one user per service, each with only the subjects it needs.

The table below is the infra half of the security model. Every user reads the log and the feed
(``$JS.API.DIRECT.GET``, stream info) and gets its replies on ``_INBOX.>``; beyond that:

* ``supervisor`` — no limits: it provisions the stream (create/update) before any service starts, and
  probes the server. Only ``deksdenflow run`` itself holds it.
* ``api`` — appends any event (``<prefix>.evt.>``), owns its key-value buckets (create, read, write),
  lists the consumers (``/queues``), asks the git worker for branches, answers other API processes'
  presence checks; it has no consumer.
* ``projector`` — consumes and acknowledges on its own two durables on the log, which it may re-create
  (their positions are its checkpoint and the feed's last message), and writes the feed
  (``<prefix>.feed.>``); it cannot append to the log.
* ``codex-worker`` — consumes and acknowledges on its own durable on the feed, appends ``protocol_run``
  events only.
* ``git-ci-worker`` — consumes and acknowledges on its own durable on the feed, appends ``project``,
  ``protocol_run`` and ``webhook`` events, answers branch listings (replies only to requests it
  received), looks at every consumer's lag (the lost-work requeue).
* ``tools`` — ``deksdenflow projector rebuild`` and friends: read the log, nothing else.

No service may delete or purge the stream, change its configuration, pull from or delete another
service's consumer, or touch another key-value bucket; an unauthenticated connection is refused.
Passwords are stored as bcrypt hashes in the server's configuration, so the file holds no secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from deksdenflow_core.subjects import Subjects

from deksdenflow_runtime.credentials import write_private

SUPERVISOR = "supervisor"
API = "api"
PROJECTOR = "projector"
CODEX_WORKER = "codex-worker"
GIT_CI_WORKER = "git-ci-worker"
TOOLS = "tools"
USERS = (SUPERVISOR, API, PROJECTOR, CODEX_WORKER, GIT_CI_WORKER, TOOLS)
# Key-value buckets of the API, by suffix of the stream name (deksdenflow_api.app).
API_BUCKET_SUFFIXES = ("_IDEMPOTENCY",)
# Cost of the stored hashes: the server checks one on every connection, so keep it cheap but real.
_BCRYPT_ROUNDS = 10


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to (NATS wildcards), and whether it may reply."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False

    def config(self) -> dict[str, object]:
        conf: dict[str, object] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            conf["allow_responses"] = True
        return conf


@dataclass(frozen=True)
class Durables:
    """The durable consumer of each consuming service: a service may pull and acknowledge on its own
    only (the names are the services' settings; the supervisor reads the same variables)."""

    projector: str = "projector"
    feed: str = "feed"
    codex_worker: str = "codex_worker"
    git_ci_worker: str = "git_ci_worker"

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Durables:
        return cls(
            projector=env.get("DEKSDENFLOW_PROJECTOR_DURABLE", cls.projector),
            feed=env.get("DEKSDENFLOW_PROJECTOR_FEED_DURABLE", cls.feed),
            codex_worker=env.get("DEKSDENFLOW_CODEX_WORKER_DURABLE", cls.codex_worker),
            git_ci_worker=env.get("DEKSDENFLOW_GIT_CI_WORKER_DURABLE", cls.git_ci_worker),
        )


def permissions(stream: str, prefix: str, durables: Durables | None = None) -> dict[str, Permissions | None]:
    """Every user's permissions for the log ``stream`` with subjects under ``prefix`` (None: no limits)."""
    durables = durables or Durables()
    api = "$JS.API"
    feed = f"{stream}_FEED"  # JetStreamEventStore.feed_stream
    streams = (stream, feed)
    read = (
        f"{api}.INFO",
        *(
            subject
            for s in streams
            for subject in (
                f"{api}.STREAM.INFO.{s}",
                f"{api}.STREAM.MSG.GET.{s}",
                f"{api}.DIRECT.GET.{s}",
                f"{api}.DIRECT.GET.{s}.>",
            )
        ),
    )
    # Looking at consumers (their lag: /queues, the lost-work requeue) is reading.
    observe = tuple(
        subject
        for s in streams
        for subject in (f"{api}.CONSUMER.INFO.{s}.*", f"{api}.CONSUMER.LIST.{s}", f"{api}.CONSUMER.NAMES.{s}")
    )

    def consume(durable: str, on: str) -> tuple[str, ...]:
        """Create, pull from and acknowledge on the durable ``durable`` of stream ``on``, and no other
        consumer."""
        return (
            *observe,
            f"{api}.CONSUMER.CREATE.{on}.{durable}",
            f"{api}.CONSUMER.CREATE.{on}.{durable}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{on}.{durable}",
            f"{api}.CONSUMER.MSG.NEXT.{on}.{durable}",
            f"$JS.ACK.{on}.{durable}.>",
        )

    inbox = ("_INBOX.>",)

    def append(*aggregates: str) -> tuple[str, ...]:
        return tuple(f"{prefix}.evt.*.{aggregate}.*.*" for aggregate in aggregates)

    buckets = [f"{stream}{suffix}" for suffix in API_BUCKET_SUFFIXES]
    kv = tuple(
        subject
        for bucket in buckets
        for subject in (
            f"{api}.STREAM.INFO.KV_{bucket}",
            f"{api}.STREAM.CREATE.KV_{bucket}",
            f"{api}.STREAM.UPDATE.KV_{bucket}",
            f"{api}.STREAM.MSG.GET.KV_{bucket}",
            f"{api}.DIRECT.GET.KV_{bucket}",
            f"{api}.DIRECT.GET.KV_{bucket}.>",
            f"$KV.{bucket}.>",
        )
    )
    subjects = Subjects(prefix)
    branches = subjects.branches_service
    diffs = subjects.diffs_service
    presence = f"{subjects.api_presence}.*"
    return {
        SUPERVISOR: None,
        # The API appends and reads (direct gets); its live streams read the read model: no consumer.
        API: Permissions(
            publish=(*read, *observe, f"{prefix}.evt.>", *kv, branches, diffs, presence),
            subscribe=(*inbox, presence),
            allow_responses=True,  # answers another API process asking whether it is alive
        ),
        # The projector's positions are its checkpoint and the feed's last message: it re-creates its own
        # durables to start after them. It writes the feed, and nothing else.
        PROJECTOR: Permissions(
            publish=(
                *read,
                *consume(durables.projector, stream),
                f"{api}.CONSUMER.DELETE.{stream}.{durables.projector}",
                *consume(durables.feed, stream),
                f"{api}.CONSUMER.DELETE.{stream}.{durables.feed}",
                f"{prefix}.feed.>",
            ),
            subscribe=inbox,
        ),
        CODEX_WORKER: Permissions(
            publish=(*read, *consume(durables.codex_worker, feed), *append("protocol_run")), subscribe=inbox
        ),
        GIT_CI_WORKER: Permissions(
            publish=(
                *read,
                *consume(durables.git_ci_worker, feed),
                *consume(f"{durables.git_ci_worker}_admission", feed),
                *append("project", "protocol_run", "webhook"),
            ),
            subscribe=(*inbox, branches, diffs),
            allow_responses=True,
        ),
        TOOLS: Permissions(publish=read, subscribe=inbox),
    }


def render_config(
    passwords: Mapping[str, str], stream: str, prefix: str, durables: Durables | None = None
) -> str:
    """The ``authorization`` block of nats-server's configuration for ``passwords`` (user → password).

    JSON is valid NATS configuration syntax; strings are quoted, so a bcrypt hash's ``$`` is not read as a
    variable reference.
    """
    users = []
    for user, perms in permissions(stream, prefix, durables).items():
        hashed = bcrypt.hashpw(passwords[user].encode(), bcrypt.gensalt(_BCRYPT_ROUNDS)).decode()
        entry: dict[str, object] = {"user": user, "password": hashed}
        if perms is not None:
            entry["permissions"] = perms.config()
        users.append(entry)
    return json.dumps({"authorization": {"users": users}}, indent=2) + "\n"


def write_config(
    file: Path, passwords: Mapping[str, str], stream: str, prefix: str, durables: Durables | None = None
) -> Path:
    """Write the server configuration (owner-only: it names every permission) and return its path."""
    write_private(file, render_config(passwords, stream, prefix, durables))
    return file

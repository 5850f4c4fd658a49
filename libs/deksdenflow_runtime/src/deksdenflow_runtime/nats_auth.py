"""Who may do what on the embedded NATS: one user per service, each with only the subjects it needs.

The table below is the infra half of the security model. Every user reads the log (``$JS.API.DIRECT.GET``,
stream info) and gets its replies on ``_INBOX.>``; beyond that:

* ``supervisor`` — no limits: it provisions the stream (create/update) before any service starts, and
  probes the server. Only ``deksdenflow run`` itself holds it.
* ``api`` — appends any event (``<prefix>.evt.>``), owns its key-value buckets (create, read, write),
  lists the consumers (``/queues``), asks the git worker for branches, and may follow the log.
* ``projector`` — consumes and acknowledges; it cannot publish an event.
* ``codex-worker`` — consumes, acknowledges, appends ``protocol_run`` events only.
* ``git-ci-worker`` — consumes, acknowledges, appends ``project``, ``protocol_run`` and ``webhook``
  events, answers branch listings (replies only to requests it received).
* ``tools`` — ``deksdenflow projector rebuild`` and friends: read the log, nothing else.

No service may delete or purge the stream, change its configuration, delete a consumer, or touch another
key-value bucket; an unauthenticated connection is refused. Passwords are stored as bcrypt hashes in the
server's configuration, so the configuration file holds no secret.
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


def permissions(
    stream: str, prefix: str, projector_durable: str = "projector"
) -> dict[str, Permissions | None]:
    """Every user's permissions for the log ``stream`` with subjects under ``prefix`` (None: no limits)."""
    api = "$JS.API"
    read = (
        f"{api}.INFO",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
    )
    consume = (
        f"{api}.CONSUMER.CREATE.{stream}.>",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{api}.CONSUMER.INFO.{stream}.*",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{api}.CONSUMER.LIST.{stream}",
        f"{api}.CONSUMER.NAMES.{stream}",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
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
    presence = f"{subjects.api_presence}.*"
    return {
        SUPERVISOR: None,
        API: Permissions(
            publish=(*read, *consume, f"{prefix}.evt.>", *kv, branches, presence),
            subscribe=(*inbox, f"{prefix}.evt.>", presence),
            allow_responses=True,  # answers another API process asking whether it is alive
        ),
        # The projector's position is its checkpoint: it re-creates its own durable to start after it.
        PROJECTOR: Permissions(
            publish=(*read, *consume, f"{api}.CONSUMER.DELETE.{stream}.{projector_durable}"), subscribe=inbox
        ),
        CODEX_WORKER: Permissions(publish=(*read, *consume, *append("protocol_run")), subscribe=inbox),
        GIT_CI_WORKER: Permissions(
            publish=(*read, *consume, *append("project", "protocol_run", "webhook")),
            subscribe=(*inbox, branches),
            allow_responses=True,
        ),
        TOOLS: Permissions(publish=read, subscribe=inbox),
    }


def render_config(passwords: Mapping[str, str], stream: str, prefix: str) -> str:
    """The ``authorization`` block of nats-server's configuration for ``passwords`` (user → password).

    JSON is valid NATS configuration syntax; strings are quoted, so a bcrypt hash's ``$`` is not read as a
    variable reference.
    """
    users = []
    for user, perms in permissions(stream, prefix).items():
        hashed = bcrypt.hashpw(passwords[user].encode(), bcrypt.gensalt(_BCRYPT_ROUNDS)).decode()
        entry: dict[str, object] = {"user": user, "password": hashed}
        if perms is not None:
            entry["permissions"] = perms.config()
        users.append(entry)
    return json.dumps({"authorization": {"users": users}}, indent=2) + "\n"


def write_config(file: Path, passwords: Mapping[str, str], stream: str, prefix: str) -> Path:
    """Write the server configuration (owner-only: it names every permission) and return its path."""
    write_private(file, render_config(passwords, stream, prefix))
    return file

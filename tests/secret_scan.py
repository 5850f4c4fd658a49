"""Find secrets where they must never be: the event stream, KV buckets, the read model, files, logs.

``Secrets`` names every kind of secret the system knows, each by what it is; a test fills in what it
created and adds more kinds as the system grows (e.g. the embedded servers' passwords). Each scanner
returns where a secret was found, in any of the forms it could be written in (raw, base64 at any
alignment, hex, URL-encoded, JSON-escaped), so a test asserts ``== []`` and the failure says where.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import nats.js.errors
from nats.aio.client import Client as NATS

# Shorter values would match by chance; every real secret is longer.
MIN_SECRET_LENGTH = 12


@dataclass
class Secrets:
    """The secrets a test created, by kind (``admin_token``, ``project_token``, ``forge_token`` …)."""

    by_kind: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, value: str) -> str:
        assert len(value) >= MIN_SECRET_LENGTH, f"{kind} is too short to be searched for reliably"
        self.by_kind.setdefault(kind, []).append(value)
        return value

    def items(self) -> Iterator[tuple[str, str]]:
        for kind, values in self.by_kind.items():
            for value in values:
                yield kind, value


@dataclass(frozen=True)
class Hit:
    """A secret (by kind) found in a place, in a form."""

    kind: str
    form: str
    where: str


def _b64_fragments(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """The base64 text that ``raw`` becomes inside any longer base64 text, at each of the 3 alignments.

    The 4-character groups that also encode bytes before or after the secret are left out.
    """
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).rstrip(b"=")
        start = 4 if shift else 0
        usable = (
            (len(raw) + shift) // 3 * 4
        )  # whole groups only: the last partial one depends on what follows
        middle = encoded[start:usable]
        if len(middle) >= 8:
            yield f"base64@{shift}", middle
            yield f"base64url@{shift}", middle.replace(b"+", b"-").replace(b"/", b"_")


def forms(secret: str) -> list[tuple[str, bytes]]:
    """Every form a secret is looked for in."""
    raw = secret.encode()
    found = [
        ("raw", raw),
        ("hex", raw.hex().encode()),
        ("HEX", raw.hex().upper().encode()),
        ("urlencoded", quote(secret, safe="").encode()),
        ("urlencoded+", quote_plus(secret).encode()),
        ("json", json.dumps(secret)[1:-1].encode()),
        *_b64_fragments(raw),
    ]
    unique: dict[bytes, str] = {}
    for name, value in found:
        unique.setdefault(value, name)
    return [(name, value) for value, name in unique.items()]


class Scanner:
    """Searches blobs for the forms of ``secrets``."""

    def __init__(self, secrets: Secrets) -> None:
        self._needles = [(kind, name, value) for kind, s in secrets.items() for name, value in forms(s)]

    def blob(self, data: bytes, where: str) -> list[Hit]:
        return [Hit(kind, name, where) for kind, name, value in self._needles if value in data]

    def files(self, root: Path, *, exclude: Iterable[Path] = ()) -> list[Hit]:
        """Every regular file under ``root`` (logs, configs, git objects as stored), but ``exclude``:
        the owner-only files whose job is to hold a secret (``<home>/api-token`` …)."""
        skipped = {p.resolve() for p in exclude}
        hits: list[Hit] = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.resolve() not in skipped:
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                hits += self.blob(data, str(path))
        return hits

    async def stream(self, nc: NATS, stream: str) -> list[Hit]:
        """Every message (subject, headers and body) still in a JetStream stream."""
        js = nc.jetstream()
        info = await js.stream_info(stream)
        hits: list[Hit] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            headers = json.dumps(msg.headers or {}).encode()
            data = (msg.subject or "").encode() + b"\n" + headers + b"\n" + (msg.data or b"")
            hits += self.blob(data, f"stream {stream} seq {seq}")
        return hits

    async def all_streams(self, nc: NATS) -> list[Hit]:
        """Every stream of the server: the event log and every KV bucket (``KV_*``)."""
        js = nc.jetstream()
        hits: list[Hit] = []
        for info in await js.streams_info():
            hits += await self.stream(nc, info.config.name or "")
        return hits

    async def database(self, db_url: str) -> list[Hit]:
        """Every column of every row of every table outside PostgreSQL's own schemas, as text."""
        conn = await asyncpg.connect(db_url)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            hits: list[Hit] = []
            for t in tables:
                name = f'"{t["table_schema"]}"."{t["table_name"]}"'
                rows = await conn.fetch(f"SELECT t::text AS row FROM {name} t")
                for i, row in enumerate(rows):
                    hits += self.blob(row["row"].encode(), f"table {name} row {i}")
            return hits
        finally:
            await conn.close()


def describe(hits: Iterable[Hit]) -> str:
    return "\n".join(f"{h.kind} ({h.form}) in {h.where}" for h in hits)

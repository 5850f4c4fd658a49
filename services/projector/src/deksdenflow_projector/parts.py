"""A rebuild's replay spread over processes, each folding the aggregates of one part of the log.

A replay is Python-bound: decoding and folding an event costs several times what PostgreSQL spends
storing it. Aggregates fold independently, and a decision belongs to one aggregate (its subject names
it), so the log splits into parts by aggregate with no row shared between two parts. This process reads
the log once (``pages.frame_pages``: NATS serves every message once) and hands each part's messages,
undecoded, to its process; each part runs the very replay of a single process (``replay_pages`` with a
``LiveProjection``) on a checkpoint row of its own, and every batch says up to which decision of the
whole log it goes. When all parts are through the same decision, their rows give way to the projector's
checkpoint at that decision: from there on the rebuilt schema is one read model like any other.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import zlib
from collections.abc import AsyncIterator
from typing import BinaryIO

import asyncpg
import uvloop
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import PROJECTOR_NAME

from deksdenflow_projector.main import tune_gc
from deksdenflow_projector.pages import decode_page, frame_pages, sequence
from deksdenflow_projector.projection import LiveProjection, init_connection
from deksdenflow_projector.replay import Page, Replayed, replay_pages

# Aggregates a replay keeps folded in memory (a run's state is a few KiB; the live projector keeps 4096):
# those it let go are read back from the schema when the log comes back to them.
CACHE_SIZE = 8192
# Sessions that fill a schema nobody reads yet (why commits need not wait for the disk: see ``rebuild``);
# the index builds after the replay sort in memory.
REPLAY_SETTINGS = {
    "application_name": "deksdenflow-rebuild",
    "synchronous_commit": "off",
    "maintenance_work_mem": "256MB",
}
_SUBJECT = b"\r\nNats-Subject: "
_END = b""


def part_of(raw_headers: bytes | None, parts: int) -> int:
    """The part of a message: by its aggregate's id, the subject's last token but one."""
    raw = raw_headers or b""
    at = raw.find(_SUBJECT)
    if at < 0:
        return 0  # not an event: the part that decodes it fails, and says why
    subject = raw[at + len(_SUBJECT) : raw.find(b"\r\n", at + len(_SUBJECT))]
    tokens = subject.rsplit(b".", 2)
    return zlib.crc32(tokens[-2] if len(tokens) == 3 else subject) % parts


def checkpoint_of(part: int, parts: int) -> str:
    return f"{PROJECTOR_NAME}/{part}/{parts}"


def _read_blob(stream: BinaryIO) -> bytes:
    head = stream.read(4)
    size = int.from_bytes(head, "big") if len(head) == 4 else 0
    return stream.read(size) if size else _END


async def _send_blob(stream: asyncio.StreamWriter, blob: bytes) -> None:
    stream.write(len(blob).to_bytes(4, "big") + blob)
    await stream.drain()


async def _received(stream: BinaryIO) -> AsyncIterator[Page]:
    while (blob := await asyncio.to_thread(_read_blob, stream)) != _END:
        through, messages = pickle.loads(blob)  # noqa: S301  (from the process that started us)
        yield await decode_page(messages), through


async def _run_part(stream: BinaryIO) -> tuple[int, int]:
    db_url, schema, part, parts = pickle.loads(await asyncio.to_thread(_read_blob, stream))  # noqa: S301
    pool = await asyncpg.create_pool(
        db_url, init=init_connection, min_size=1, max_size=2, server_settings=REPLAY_SETTINGS
    )
    try:
        projection = LiveProjection(
            pool, schema, notify=False, cache_size=CACHE_SIZE, checkpoint=checkpoint_of(part, parts)
        )
        async with pool.acquire() as conn:
            replayed = await replay_pages(conn, _received(stream), projection, after=0)
        return replayed.events, replayed.checkpoint
    finally:
        await pool.close()


def main() -> None:
    """A part's process (``python -m deksdenflow_projector.parts``): what to do, then its messages,
    arrive on stdin; what it applied goes to stdout as ``events checkpoint``."""
    tune_gc()
    events, last = uvloop.run(_run_part(sys.stdin.buffer))
    print(events, last, flush=True)


def _stdin(process: asyncio.subprocess.Process) -> asyncio.StreamWriter:
    if process.stdin is None:  # never: started with a pipe there
        raise InfrastructureError("a part of the rebuild has no input")
    return process.stdin


async def _part_process(db_url: str, schema: str, part: int, parts: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deksdenflow_projector.parts",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    await _send_blob(_stdin(process), pickle.dumps((db_url, schema, part, parts)))
    return process


async def _result(process: asyncio.subprocess.Process, part: int) -> tuple[int, int]:
    await _send_blob(_stdin(process), _END)  # a zero length: the end
    _stdin(process).close()
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise InfrastructureError(f"part {part} of the rebuild failed (exit code {process.returncode})")
    events, last = output.split()
    return int(events), int(last)


async def replay_in_parts(
    conn: asyncpg.Connection, db_url: str, store: JetStreamEventStore, schema: str, parts: int
) -> Replayed:
    """Replay the whole log into ``schema`` (fresh, empty) in ``parts`` processes; ``conn`` then sets
    the projector's checkpoint where they all stopped."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for part in range(parts):
            processes.append(await _part_process(db_url, schema, part, parts))
        through = 0
        async for frames in frame_pages(store, 0):
            shares: list[list[tuple[bytes | None, bytes]]] = [[] for _ in range(parts)]
            for frame in frames:
                shares[part_of(frame.headers, parts)].append((frame.headers, frame.data))
            through = sequence(frames[-1].headers)
            await asyncio.gather(
                *(
                    _send_blob(_stdin(process), pickle.dumps((through, share)))
                    for process, share in zip(processes, shares, strict=True)
                )
            )
        results = [await _result(process, part) for part, process in enumerate(processes)]
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise InfrastructureError(f"a part of the rebuild stopped: {exc!r}") from exc
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if {last for _, last in results} != {through}:
        raise InfrastructureError(f"the parts of the rebuild did not all stop at {through}: {results}")
    async with conn.transaction():
        names = [checkpoint_of(part, parts) for part in range(parts)]
        await conn.execute(f'DELETE FROM "{schema}".checkpoints WHERE name = ANY($1)', names)
        if through:
            await conn.execute(
                f'INSERT INTO "{schema}".checkpoints (name, last_seq, updated_at) VALUES ($1, $2, now())',
                PROJECTOR_NAME,
                through,
            )
    return Replayed(through, sum(events for events, _ in results))


if __name__ == "__main__":
    main()

"""Many live clients: one read of the feed per API process, a cap, slow clients cut off, gapless resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd

from tests.api.conftest import ADMIN_TOKEN, System
from tests.api.helpers import create_project
from tests.projector.scenario import meta
from tests.projector.test_projection import log_positions
from tests.support import eventually

MAX_CLIENTS = 40
QUEUE_EVENTS = 5


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"sse_max_clients": MAX_CLIENTS, "sse_client_queue_events": QUEUE_EVENTS}


class Listener:
    """One SSE client; records the positions (SSE ids), decision sequences and types it receives."""

    def __init__(self, system: System, headers: dict[str, str], **params: str) -> None:
        self.client = system.client(**headers)
        self.params = params
        self.positions: list[int] = []
        self.seqs: list[int] = []
        self.types: list[str] = []
        self.status = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, last_event_id: int | None = None) -> Listener:
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        self.task = asyncio.create_task(self._listen(headers))
        return self

    async def _listen(self, headers: dict[str, str]) -> None:
        async with self.client.stream(
            "GET", "/events/stream", params=self.params, headers=headers
        ) as response:
            self.status = response.status_code
            if response.status_code != 200:
                await response.aread()
                return
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    self.positions.append(int(line[4:]))
                elif line.startswith("data: "):
                    self.seqs.append(json.loads(line[6:])["seq"])
                elif line.startswith("event: "):
                    self.types.append(line[7:])

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        await self.client.aclose()


async def _metric(system: System, name: str) -> float:
    async with system.client() as client:
        text = (await client.get("/metrics")).text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def _clients(system: System, count: int) -> bool:
    return await _metric(system, "deksdenflow_api_sse_clients") == count


async def test_one_feed_read_serves_every_client_and_the_cap_answers_503(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "fan")
        listeners = [
            Listener(system, {"Authorization": f"Bearer {ADMIN_TOKEN}"}).start() for _ in range(MAX_CLIENTS)
        ]
        try:
            await eventually(lambda: _clients(system, MAX_CLIENTS), within=30, what="every client connected")
            async with system.admin() as extra:
                refused = await extra.get("/events/stream")
            assert refused.status_code == 503
            assert refused.json()["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) > 0
            reads = await _metric(system, "deksdenflow_api_sse_feed_reads_total")
            created = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
            seq = int(created.headers["X-Event-Sequence"])
            await eventually(
                lambda: all(seq in listener.seqs for listener in listeners), within=30, what="all got it"
            )
            # One write, one checkpoint advance: the feed was read once or twice, not once per client.
            assert await _metric(system, "deksdenflow_api_sse_feed_reads_total") - reads <= 2
        finally:
            for listener in listeners:
                await listener.stop()
        await eventually(lambda: _clients(system, 0), within=30, what="every client gone")


async def test_resuming_with_last_event_id_has_no_gap_and_no_duplicate(system: System) -> None:
    """Clients resume while events keep being written, so the switch from history to live happens
    under load: each sees every event exactly once, in order."""
    async with system.admin() as admin:
        project = await create_project(admin, "resume")
        writing = asyncio.Event()
        writing.set()

        async def write() -> None:
            while writing.is_set():
                written = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
                assert written.status_code == 201, written.text

        writer = asyncio.create_task(write())
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        try:
            first = Listener(system, headers).start()
            await eventually(lambda: len(first.positions) >= 20, within=30, what="some events")
            await first.stop()
            resumed = []
            for _ in range(4):
                listener = Listener(system, headers).start(last_event_id=first.positions[-1])
                await eventually(
                    lambda: len(listener.positions) >= 10,  # noqa: B023
                    within=30,
                    what="live events after resume",
                )
                resumed.append(listener)
            writing.clear()
            await asyncio.wait_for(writer, 30)
            last = await system.store.stream_last_seq()
            logged = [p for p in await log_positions(system.store) if p > first.positions[-1]]
            for listener in resumed:
                await eventually(lambda: last in listener.seqs, within=30, what="the last event")  # noqa: B023
                await listener.stop()
                assert listener.positions == logged, "every event exactly once"
        finally:
            writing.clear()
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer


async def test_a_project_token_stream_sees_only_its_project(system: System) -> None:
    async with system.admin() as admin:
        mine, other = await create_project(admin, "mine"), await create_project(admin, "other")
        scoped = Listener(system, {"X-Project-Token": mine["project_token"]}).start(last_event_id=0)
        forbidden = Listener(
            system, {"X-Project-Token": mine["project_token"]}, project_id=other["id"]
        ).start()
        try:
            for project in (other, mine):
                created = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
                assert created.status_code == 201
            seq = int(created.headers["X-Event-Sequence"])
            await eventually(lambda: seq in scoped.seqs, within=30, what="its own newest event")
            events = (await admin.get("/events", params={"project_id": mine["id"], "limit": 500})).json()[
                "data"
            ]
            assert scoped.seqs == [e["seq"] for e in events], "exactly its project's events"
            await eventually(lambda: forbidden.status == 403, within=10, what="another project refused")
        finally:
            await scoped.stop()
            await forbidden.stop()


async def test_a_client_that_does_not_read_is_cut_off_and_the_others_keep_receiving(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "slow")
        keeps_up = Listener(system, {"Authorization": f"Bearer {ADMIN_TOKEN}"}).start()
        url = urlsplit(system.base_url)
        slow = socket.socket()
        # A small receive window, and nothing is ever read: the server's buffers fill, then its queue.
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((url.hostname, url.port))
        slow.sendall(
            f"GET /events/stream HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
        )
        try:
            await eventually(lambda: _clients(system, 2), within=30, what="both clients connected")
            # Large events, so that the kernel's and the server's buffers fill up quickly.
            big = "x" * 200_000
            seq = 0
            for i in range(80):
                outcome = await system.repo.create_protocol_run(
                    project["id"], cmd.CreateProtocolRun(task_name=f"big {i}", description=big), meta()
                )
                seq = outcome.appended.last_seq
                if await _metric(system, "deksdenflow_api_sse_cut_off_total") >= 1:
                    break
            await eventually(
                lambda: _metric_at_least(system, "deksdenflow_api_sse_cut_off_total", 1),
                within=30,
                what="the slow client cut off",
            )
            await eventually(lambda: _clients(system, 1), within=30, what="only the reader left")
            await eventually(lambda: seq in keeps_up.seqs, within=60, what="the reader got everything")
            assert keeps_up.positions == sorted(set(keeps_up.positions))
            # The slow client's connection is closed: reading what was buffered ends at EOF.
            slow.settimeout(30)
            await asyncio.to_thread(_read_to_eof, slow)
        finally:
            slow.close()
            await keeps_up.stop()


async def _metric_at_least(system: System, name: str, value: float) -> bool:
    return await _metric(system, name) >= value


def _read_to_eof(sock: socket.socket) -> None:
    while sock.recv(1 << 20):
        pass

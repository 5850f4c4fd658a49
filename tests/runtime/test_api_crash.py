"""An API process that dies, or a NATS that goes away, never locks a client out nor answers 500.

* A request that holds an ``Idempotency-Key`` claim when its API process is SIGKILLed: the client's
  retry through another API process runs at once (the claim's owner is seen to be gone), instead of
  answering 409 until the claim is old.
* NATS stopping (frozen, then shut down) under requests: every answer is a success or a 503 with
  ``Retry-After``, never a 500.
* Killed while creating projects: each project's decision of three events is in the log whole or not at
  all.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import httpx
import nats
import nats.js.errors
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_projector.migrate import migrate
from deksdenflow_runtime.embedded import EmbeddedNats, free_port
from nats.aio.client import Client as NATS

from tests.runtime.api_support import answers, api_env, start_api
from tests.support import eventually

ADMIN = f"admin-{uuid.uuid4().hex}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


async def _pending_claims(nats_url: str, bucket: str) -> list[dict[str, object]]:
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(bucket)
        claims = []
        for key in await kv.keys():
            entry = await kv.get(key)
            record = json.loads(entry.value or b"{}")
            if record.get("state") == "pending":
                claims.append(record)
        return claims
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NoKeysError):
        return []
    finally:
        await nc.close()


async def test_a_retry_after_the_api_died_holding_the_claim_runs_at_once(
    nats_url: str, fresh_db_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrate, fresh_db_url)
    env = api_env(nats_url, fresh_db_url, free_port(), DEKSDENFLOW_API_TOKEN=ADMIN)
    bucket = f"{env['DEKSDENFLOW_STREAM_NAME']}_IDEMPOTENCY"
    port = int(env["DEKSDENFLOW_API_PORT"])
    log = tmp_path / "api.log"
    headers = {"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": "delete-once"}
    path = f"http://127.0.0.1:{port}/projects/p1/branches/0001-x/delete"
    first = start_api(env, log)
    # The request claims its key, then waits on a read-model table the test holds locked: it is in
    # flight, holding the claim, for as long as the test wants.
    lock = await asyncpg.connect(fresh_db_url)
    try:
        await eventually(lambda: answers(port), within=30, what="the first API to answer")
        held = lock.transaction()
        await held.start()
        await lock.execute(f'LOCK TABLE "{SCHEMA}".protocol_runs IN ACCESS EXCLUSIVE MODE')
        client = httpx.AsyncClient(timeout=60)
        in_flight = asyncio.create_task(client.post(path, json={"confirm": True}, headers=headers))

        async def claimed() -> bool:
            return len(await _pending_claims(nats_url, bucket)) == 1

        await eventually(claimed, within=30, what="the request to hold its claim")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        await held.rollback()
        await asyncio.gather(in_flight, return_exceptions=True)  # its connection died with the process
        await client.aclose()
    finally:
        await lock.close()
        _kill(first)

    second = start_api(env, log)
    try:
        await eventually(lambda: answers(port), within=30, what="the second API to answer")
        started = time.monotonic()
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=30) as client:

            async def retried() -> bool:
                response = await client.post(path, json={"confirm": True}, headers=headers)
                statuses.append(response.status_code)
                return response.status_code != 409

            await eventually(retried, within=20, what="the retry to run instead of answering 409")
            # The request ran (there is no such branch): an answer of its own, not the lock-out.
            assert statuses[-1] == 404, statuses
            replay = await client.post(path, json={"confirm": True}, headers=headers)
            assert replay.headers.get("Idempotent-Replayed") == "true"
        print(f"retry ran {time.monotonic() - started:.2f}s after the new API answered: {statuses}")
    finally:
        _kill(second)


async def test_requests_while_nats_stops_answer_503_with_retry_after_never_500(
    fresh_db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "nats-home"
    server = EmbeddedNats(home, port=free_port())
    await server.start()
    pid = int(server.pid_path.read_text())
    env = api_env(server.url, fresh_db_url, free_port(), DEKSDENFLOW_API_TOKEN=ADMIN)
    port = int(env["DEKSDENFLOW_API_PORT"])
    api = start_api(env, tmp_path / "api.log")
    seen: list[tuple[int, str | None, str]] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
        ) as client:

            async def create(key: str | None) -> int:
                headers = {"Idempotency-Key": key} if key else {}
                body = {"name": "n", "git_url": "file:///n.git", "onboard": False}
                response = await client.post("/projects", json=body, headers=headers)
                seen.append((response.status_code, response.headers.get("Retry-After"), response.text))
                return response.status_code

            async def created() -> bool:
                return await answers(port) and await create(uuid.uuid4().hex) == 201

            await eventually(created, within=30, what="the API to write through NATS")
            # Frozen: the connection looks alive, every request to NATS times out.
            os.kill(pid, signal.SIGSTOP)
            try:
                frozen = await asyncio.gather(create(uuid.uuid4().hex), create(None))
            finally:
                os.kill(pid, signal.SIGCONT)
            assert list(frozen) == [503, 503], seen[-2:]
            # Shut down, with requests under way.
            requests = [asyncio.create_task(create(uuid.uuid4().hex)) for _ in range(10)]
            await server.stop()
            requests += [asyncio.create_task(create(k)) for k in (uuid.uuid4().hex, None)]
            statuses = await asyncio.gather(*requests)
            assert set(statuses) <= {201, 503}, seen
            assert statuses[-2:] == [503, 503], seen[-2:]
    finally:
        _kill(api)
        await server.stop()
    assert all(retry is not None for status, retry, _ in seen if status == 503), seen
    assert all(status != 500 for status, _, _ in seen), seen


async def test_project_creations_cut_by_a_killed_api_are_each_whole_or_absent(
    nats_url: str, fresh_db_url: str, tmp_path: Path, nc: NATS
) -> None:
    """``POST /projects`` decides three events (registered, token issued, onboarding requested) as one
    decision. SIGKILL the API while 16 clients create projects: in the log, every project has all three,
    in one message, or nothing; every project a client was told about is there."""
    await asyncio.to_thread(migrate, fresh_db_url)
    env = api_env(nats_url, fresh_db_url, free_port(), DEKSDENFLOW_API_TOKEN=ADMIN)
    port = int(env["DEKSDENFLOW_API_PORT"])
    api = start_api(env, tmp_path / "api.log")
    told: list[str] = []
    try:
        await eventually(lambda: answers(port), within=30, what="the API to answer")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as client:

            async def create_until_gone() -> None:
                while True:
                    try:
                        response = await client.post(
                            "/projects", json={"name": "n", "git_url": "file:///n.git"}
                        )
                    except httpx.HTTPError:
                        return  # the API is gone
                    if response.status_code == 201:
                        told.append(response.json()["id"])

            clients = [asyncio.create_task(create_until_gone()) for _ in range(16)]
            await eventually(lambda: len(told) >= 40, within=60, what="projects being created")
            api.send_signal(signal.SIGKILL)
            api.wait(timeout=30)
            await asyncio.gather(*clients)
    finally:
        _kill(api)
    settings = EventStoreSettings(
        nats_url=nats_url,
        stream_name=env["DEKSDENFLOW_STREAM_NAME"],
        subject_prefix=env["DEKSDENFLOW_SUBJECT_PREFIX"],
    )
    store = JetStreamEventStore(nc, settings)
    by_project: dict[str, list[RecordedEvent]] = {}
    for event in (await store.read(store.subjects.all)).events:
        by_project.setdefault(event.envelope.aggregate_id, []).append(event)
    whole = [pev.ProjectRegistered.EVENT_TYPE, pev.ProjectTokenIssued.EVENT_TYPE]
    whole.append(pev.ProjectOnboardingRequested.EVENT_TYPE)
    for events in by_project.values():
        assert [e.envelope.type for e in events] == whole
        assert {e.stream_seq for e in events} == {events[0].stream_seq}, "one message"
    assert set(told) <= set(by_project), "every acknowledged creation is in the log"

"""Fair admission: a freed slot goes to the next waiting key in turn, so a quiet project's command waits
for one turn of each busy key, however many commands they have queued."""

from __future__ import annotations

import asyncio

import pytest
from deksdenflow_api.admission import FairGate, admission_key


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("POST", "/projects", "POST /projects"),
        ("POST", "/projects/p1/protocols", "/projects/p1"),
        ("POST", "/protocols/r1/actions/pause", "/protocols/r1"),
        ("POST", "/webhooks/github", "/webhooks/github"),
        ("DELETE", "/", "DELETE /"),
    ],
)
def test_commands_compete_as_the_aggregate_or_collection_their_path_names(
    method: str, path: str, key: str
) -> None:
    assert admission_key(method, path) == key


async def test_a_quiet_key_is_let_in_before_a_busy_keys_backlog() -> None:
    gate = FairGate(limit=2)
    order: list[str] = []
    release = asyncio.Event()

    async def command(key: str, name: str) -> None:
        await gate.acquire(key)
        order.append(name)
        try:
            await release.wait()
        finally:
            gate.release()

    running = [asyncio.create_task(command("busy", f"busy-{n}")) for n in range(6)]
    await asyncio.sleep(0)
    assert order == ["busy-0", "busy-1"], "two slots"
    quiet = asyncio.create_task(command("quiet", "quiet"))
    await asyncio.sleep(0)
    assert gate.queued == 5
    release.set()
    await asyncio.gather(*running, quiet)
    # The busy key had waited first: it takes one slot, then the quiet one has its turn, ahead of the
    # busy key's backlog.
    assert order == ["busy-0", "busy-1", "busy-2", "quiet", "busy-3", "busy-4", "busy-5"]
    assert gate.queued == 0


async def test_a_command_that_goes_away_while_waiting_gives_up_its_place() -> None:
    gate = FairGate(limit=1)
    await gate.acquire("a")
    waiting = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.queued == 0
    gate.release()
    await asyncio.wait_for(gate.acquire("c"), 5)  # the slot is free again, not lost

"""``GET /health`` of the API, in process (ASGI transport, real lifespan) against real servers."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from deksdenflow_api.app import create_app
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings
from deksdenflow_runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from pydantic import SecretStr

from tests.support import eventually

HEALTH_TIMEOUT = 0.5


@asynccontextmanager
async def api_client(nats_url: str, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API app with its lifespan running (httpx's ASGI transport does not run lifespans itself)."""
    app = create_app(
        ApiSettings(health_timeout_seconds=HEALTH_TIMEOUT),
        event_store=EventStoreSettings(nats_url=nats_url, connect_timeout_seconds=1),
        database=DatabaseSettings(db_url=db_url),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def _health_when(client: httpx.AsyncClient, status: int) -> dict[str, Any]:
    """The /health body once it answers ``status`` (NATS connects in the background)."""
    body: dict[str, Any] = {}

    async def answers() -> bool:
        nonlocal body
        response = await client.get("/health")
        body = response.json()
        return response.status_code == status

    await eventually(answers, within=15, what=f"/health to answer {status}")
    return body


@pytest.fixture
def closed_port_url() -> str:
    """A port nothing listens on."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def silent_port(taken_port: int) -> int:
    """A port that accepts connections (kernel backlog) but never says a word."""
    return taken_port


async def test_health_is_ok_when_nats_and_postgres_answer(nats_url: str, fresh_db_url: str) -> None:
    async with api_client(nats_url, fresh_db_url) as client:
        body = await _health_when(client, 200)
    assert body == {"status": "ok", "checks": {"nats": "ok", "postgres": "ok"}}


async def test_health_names_postgres_when_it_is_down(nats_url: str, closed_port_url: str) -> None:
    async with api_client(nats_url, f"postgresql://postgres@{closed_port_url}/x") as client:
        await eventually(
            lambda: _nats_ok(client), within=15, what="NATS to be reported up while PostgreSQL is down"
        )
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"] == {"nats": "ok", "postgres": "down"}
    assert "refused" in body["errors"]["postgres"].lower()
    assert "nats" not in body["errors"]


async def _nats_ok(client: httpx.AsyncClient) -> bool:
    return bool((await client.get("/health")).json()["checks"]["nats"] == "ok")


async def test_health_names_nats_when_it_is_down(pg_admin_url: str, closed_port_url: str) -> None:
    async with api_client(f"nats://{closed_port_url}", pg_admin_url) as client:
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"] == {"nats": "down", "postgres": "ok"}
    assert "not connected" in body["errors"]["nats"]


async def test_each_check_is_bounded_by_the_health_timeout(nats_url: str, silent_port: int) -> None:
    async with api_client(nats_url, f"postgresql://postgres@127.0.0.1:{silent_port}/x") as client:
        started = time.monotonic()
        response = await client.get("/health")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["errors"]["postgres"] == f"no answer within {HEALTH_TIMEOUT:g}s"
    assert elapsed < HEALTH_TIMEOUT + 1.0


async def test_the_api_starts_before_its_servers_and_turns_healthy_when_they_come_up() -> None:
    nats_port, pg_port = free_port(), free_port()
    home = Path(tempfile.mkdtemp(prefix="deksdenflow-late-"))
    try:
        async with api_client(
            f"nats://127.0.0.1:{nats_port}", f"postgresql://postgres@127.0.0.1:{pg_port}/deksdenflow"
        ) as client:
            body = (await client.get("/health")).json()
            assert body["checks"] == {"nats": "down", "postgres": "down"}
            async with (
                EmbeddedNats(home, port=nats_port),
                EmbeddedPostgres(home, port=pg_port, durable=False),
            ):
                await _health_when(client, 200)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_reads_answer_503_not_500_while_postgres_is_down(nats_url: str, closed_port_url: str) -> None:
    app = create_app(
        ApiSettings(api_token=SecretStr("t")),
        event_store=EventStoreSettings(nats_url=nats_url, connect_timeout_seconds=1),
        database=DatabaseSettings(db_url=f"postgresql://postgres@{closed_port_url}/x"),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": "Bearer t"}
        ) as client:
            response = await client.get("/projects")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"

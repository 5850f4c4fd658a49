"""``X-Min-Event-Sequence`` is read by hand where a route takes ``ReaderDep`` (it saves FastAPI's
per-request parameter machinery on every read) and by FastAPI where it takes ``ReadContext``: both must
refuse a bad value with the same answer, and the schema must document the header on every such route."""

from __future__ import annotations

from deksdenflow_api.app import create_app
from deksdenflow_api.reads import reader
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings
from fastapi.routing import APIRoute

from tests.api.conftest import System
from tests.api.helpers import create_project

BAD_VALUES = ["abc", "-1", str(2**62 + 1), "1.5", ""]


async def test_a_bad_min_sequence_gets_the_same_422_by_hand_as_from_fastapi(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        for bad in BAD_VALUES:
            headers = {"X-Min-Event-Sequence": bad}
            by_hand = await admin.get(f"/projects/{project['id']}", headers=headers)
            by_fastapi = await admin.get("/events", headers=headers)  # takes ReadContext
            assert by_hand.status_code == by_fastapi.status_code == 422, (bad, by_hand.text)
            assert by_hand.json() == by_fastapi.json(), bad
            assert by_hand.json()["errors"][0]["loc"] == ["header", "x-min-event-sequence"]
        for odd in ("1", "007", "+1", "1_0"):  # whatever FastAPI takes, the hand-read header takes
            headers = {"X-Min-Event-Sequence": odd}
            by_hand = await admin.get(f"/projects/{project['id']}", headers=headers)
            assert by_hand.status_code == (await admin.get("/events", headers=headers)).status_code, odd
    async with system.client() as anonymous:  # the caller is checked first: nothing about the header leaks
        refused = await anonymous.get(f"/projects/{project['id']}", headers={"X-Min-Event-Sequence": "abc"})
        assert refused.status_code == 401


def test_every_route_that_takes_reader_documents_the_header() -> None:
    app = create_app(ApiSettings(), event_store=EventStoreSettings(), database=DatabaseSettings())
    paths = app.openapi()["paths"]
    readers = [
        route
        for route in app.routes
        if isinstance(route, APIRoute) and any(d.call is reader for d in route.dependant.dependencies)
    ]
    assert len(readers) >= 10
    for route in readers:
        for method in route.methods or ():
            parameters = paths[route.path][method.lower()].get("parameters", [])
            documented = [
                p for p in parameters if p["name"] == "x-min-event-sequence" and p["in"] == "header"
            ]
            assert len(documented) == 1, route.path

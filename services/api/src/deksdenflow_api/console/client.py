"""The console's way to the API: the API's own routes, called in-process with the signed-in token.

The console is a client of the public API like the CLI: the same authentication, scoping (a project token
sees its project only), validation, idempotency, read-your-writes and 409s — nothing is read or decided
twice. The calls go through the ASGI app itself (no socket, no second server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from deksdenflow_api.auth import TOKEN_PREFIX


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body.get("detail") or "")
        return ""


class ApiClient:
    def __init__(self, request: Request, token: str) -> None:
        header = (
            {"X-Project-Token": token}
            if token.startswith(TOKEN_PREFIX)
            else {"Authorization": f"Bearer {token}"}
        )
        request_id = request.headers.get("x-request-id")
        if request_id:
            header["X-Request-ID"] = request_id
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=request.app),
            base_url="http://console.internal",
            headers=header,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Answer:
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        return _answer(await self._client.get(path, params=clean))

    async def post(self, path: str, body: Any = None) -> Answer:
        return _answer(await self._client.post(path, json=body))

    async def get_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (``after``-paged event lists)."""
        items: list[dict[str, Any]] = []
        after = int(params.pop("after", 0) or 0)
        while True:
            answer = await self.get(path, after=after, limit=500, **params)
            if not answer.ok:
                return items
            page = answer.body["data"]
            items.extend(page)
            if len(page) < 500:
                return items
            after = page[-1]["position"]


def _answer(response: httpx.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = None
    return Answer(response.status_code, body)

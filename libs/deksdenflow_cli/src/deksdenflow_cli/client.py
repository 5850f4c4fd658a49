"""The HTTP client: one call per ``api.ENDPOINTS`` entry, API errors turned into exit codes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from deksdenflow_cli.api import ENDPOINTS
from deksdenflow_cli.context import Context
from deksdenflow_cli.exits import CONFLICT, SERVER, CliError, exit_code_of_status

READ_ATTEMPTS = 3
# Project tokens (issued by the API, one project's access) go in X-Project-Token, admin tokens as a bearer.
PROJECT_TOKEN_PREFIX = "dfp_"  # noqa: S105  # the public prefix of project tokens, not a secret


def error_of(response: httpx.Response) -> CliError:
    """The API's error body (code, message, fields) as a CliError with the contract's exit code."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or response.reason_phrase or "error")
    if errors := body.get("errors"):
        message += ": " + "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}" for e in errors
        )
    code = exit_code_of_status(response.status_code)
    if code == CONFLICT:
        if current := body.get("current_status"):
            message += f" (current status: {current})"
        for key, value in body.items():
            if key.endswith("_status") and key != "current_status":
                message += f" ({key.replace('_', ' ')}: {value})"
    return CliError(code, f"{response.status_code} {body.get('code', 'error')}: {message}", body)


def headers_of(context: Context) -> dict[str, str]:
    headers = {"User-Agent": "deksdenflow-cli"}
    if context.token and context.token.startswith(PROJECT_TOKEN_PREFIX):
        headers["X-Project-Token"] = context.token
    elif context.token:
        headers["Authorization"] = f"Bearer {context.token}"
    return headers


def _stream_request(params: dict[str, Any], last_event_id: str | None) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": ENDPOINTS["events.stream"].path,
        "params": {k: v for k, v in params.items() if v is not None},
        "headers": {"Last-Event-ID": last_event_id} if last_event_id else {},
        "timeout": httpx.Timeout(30.0, read=None),
    }


class Client:
    """Calls the API of one context; ``call`` raises CliError for anything but a 2xx."""

    def __init__(self, context: Context, timeout: float = 30.0) -> None:
        self.context = context
        self.http = httpx.Client(base_url=context.url, headers=headers_of(context), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        endpoint: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        **path: str,
    ) -> Any:
        spec = ENDPOINTS[endpoint]
        url = spec.path.format(**path)
        if body is not None:
            unknown = set(body) - set(spec.request)
            assert not unknown, f"{endpoint} sends fields it does not declare: {unknown}"  # noqa: S101
        query = {k: v for k, v in (params or {}).items() if v is not None}
        # A read is asked again when the connection drops (a kept-alive connection the server or a proxy
        # closed meanwhile); a command is not, since it may have been carried out.
        attempts = READ_ATTEMPTS if spec.method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.http.request(spec.method, url, json=body, params=query)
                break
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise CliError(SERVER, f"cannot reach the API at {self.context.url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_of(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(SERVER, f"the API answered {url} with something that is not JSON") from exc

    def stream(self, params: dict[str, Any], last_event_id: str | None) -> Iterator[ServerSentEvent]:
        """The SSE feed (``GET /events/stream``) from ``last_event_id``; transport errors propagate."""
        with connect_sse(self.http, **_stream_request(params, last_event_id)) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise error_of(source.response)
            yield from source.iter_sse()

    async def astream(
        self, params: dict[str, Any], last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        """``stream`` for an event loop (the TUI): the same feed on a connection of its own, which a
        cancelled task closes at once (a thread blocked in a read could not be stopped)."""
        async with (
            httpx.AsyncClient(base_url=self.context.url, headers=headers_of(self.context)) as http,
            aconnect_sse(http, **_stream_request(params, last_event_id)) as source,
        ):
            if source.response.status_code >= 400:
                await source.response.aread()
                raise error_of(source.response)
            async for message in source.aiter_sse():
                yield message

"""One HTTP exchange with a forge, and the translation of its failures into our error classes.

Both REST clients go through ``RestTransport`` so that 401/403/404/5xx/timeouts mean the same thing for
GitHub and GitLab, and so that no error message can carry the token (it only lives in a header, and any
text we quote from a response is scrubbed of it anyway).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import httpx

from deksdenflow_git.forges.base import (
    ForgeAuthError,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    RepoRef,
    api_message,
)

USER_AGENT = "deksdenflow-forge-client"


class RestTransport:
    """An ``httpx.AsyncClient`` bound to one forge API, one repository and one named token."""

    def __init__(
        self,
        *,
        repo: RepoRef,
        base_url: str,
        headers: Mapping[str, str],
        token: str,
        token_name: str,
        timeout: float,
    ) -> None:
        self.repo = repo
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._token_name = token_name
        self._client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT, **headers}, timeout=timeout, follow_redirects=False
        )
        self._timeout = timeout
        # Made on first use: only GitHub log downloads need it.
        self._bare: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._bare is not None:
            await self._bare.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        accept: Collection[int] = (200,),
        base_url: str | None = None,
    ) -> httpx.Response:
        """Send ``method path`` (``path`` already URL-encoded, relative to the API base).

        Returns the response when its status is in ``accept``; any other status raises the matching
        error, so callers only deal with the answers they expect. ``base_url`` replaces the API base for
        an endpoint that lives elsewhere on the same host with the same credentials (GitHub's GraphQL).
        """
        url = f"{(base_url or self.base_url).rstrip('/')}{path}"
        try:
            response = await self._client.request(method, url, params=params, json=json)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from None
        if response.status_code in accept:
            return response
        raise self.error_for(method, path, response)

    async def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return (await self.request("GET", path, params=params)).json()

    async def fetch_presigned(self, url: str) -> str:
        """The body of a pre-signed URL (a redirect target), fetched without our auth headers.

        The storage behind such URLs rejects a second auth mechanism, and the token must not travel to
        another host.
        """
        if self._bare is None:
            self._bare = httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, timeout=self._timeout)
        try:
            response = await self._bare.get(url)
        except httpx.TransportError as exc:
            raise self._unreachable("GET", "(log download)", exc) from None
        if response.status_code != 200:
            raise self.error_for("GET", "(log download)", response)
        return response.text

    def error_for(self, method: str, path: str, response: httpx.Response) -> Exception:
        """The error to raise for an unexpected answer (also used by callers for statuses they inspect)."""
        status = response.status_code
        detail = self.scrub(api_message(_json_or_text(response)))
        provider = self.repo.provider
        fields: dict[str, Any] = {
            "provider": provider,
            "repo": self.repo.path,
            "status": status,
            "request": f"{method} {path}",
        }
        said = f" ({detail})" if detail else ""
        if status == 401:
            return ForgeAuthError(
                f"{provider} rejected the credentials for {self.repo.path} with HTTP 401{said}; "
                f"check the token named {self._token_name}",
                **fields,
            )
        if status in (403, 429) and _rate_limited(response, detail):
            return ForgeUnavailable(
                f"{provider} rate-limited requests for {self.repo.path} (HTTP {status}){said}; retry later",
                **fields,
            )
        if status == 403:
            return ForgeAuthError(
                f"{provider} refused {method} {path} for {self.repo.path} with HTTP 403{said}; check that "
                f"the token named {self._token_name} can access the repository with the needed permissions",
                **fields,
            )
        if status == 404:
            return ForgeNotFound(
                f"{provider} answered 404 to {method} {path}{said}: repository {self.repo.path} on "
                f"{self.repo.host} does not exist, or the token named {self._token_name} cannot see it, "
                "or the item asked for does not exist",
                **fields,
            )
        if status >= 500:
            return ForgeUnavailable(
                f"{provider} failed {method} {path} for {self.repo.path} with HTTP {status}{said}", **fields
            )
        return ForgeError(f"{provider} refused {method} {path} with HTTP {status}{said}", **fields)

    def scrub(self, text: str) -> str:
        """``text`` with the token masked: a forge may echo request data back in an error body."""
        return text.replace(self._token, "***") if self._token else text

    def _unreachable(self, method: str, path: str, exc: httpx.TransportError) -> ForgeUnavailable:
        provider = self.repo.provider
        return ForgeUnavailable(
            f"{provider} did not answer {method} {path} at {self.base_url}: "
            f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}",
            provider=provider,
            repo=self.repo.path,
            request=f"{method} {path}",
        )


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _rate_limited(response: httpx.Response, detail: str) -> bool:
    """GitHub signals rate limits with 403/429 plus headers; GitLab with 429 (and a Retry-After)."""
    return (
        response.status_code == 429
        or response.headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in response.headers
        or "rate limit" in detail.lower()
    )

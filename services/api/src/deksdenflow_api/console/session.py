"""The console's sign-in: the token in an HttpOnly, SameSite=Strict cookie, and a CSRF token derived from it.

Nothing is stored server-side: the API keeps only the SHA-256 of a project token (and the admin tokens in its
settings), so the browser's cookie is the only place the token lives between requests. Every request
authenticates it again exactly as the API does (``auth.principal_for_token``): a revoked project token
signs the console out at once. The CSRF token is an HMAC of a fixed label keyed by the token: only the
holder of the token can compute it (a page of another site cannot read it, SameSite=Strict keeps the
cookie off its requests anyway, and ``Origin`` is checked too).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from deksdenflow_api.auth import Principal, principal_for_token
from deksdenflow_api.context import context_of
from deksdenflow_api.errors import HttpError

COOKIE = "df_console"
COOKIE_PATH = "/console"
_CSRF_LABEL = b"deksdenflow-console-csrf-v1"


class SignInRequired(Exception):
    """No (valid) session: the page sends the browser to the sign-in form."""


class CsrfRefused(Exception):
    """A form posted without the session's CSRF token, or from another origin."""


@dataclass(frozen=True)
class Session:
    token: str
    principal: Principal

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


def csrf_token(token: str) -> str:
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


async def session_of(request: Request) -> Session:
    """The signed-in session, or ``SignInRequired``."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired
    try:
        principal = await principal_for_token(context_of(request), token)
    except HttpError as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        raise
    return Session(token=token, principal=principal)


async def checked_session(request: Request, csrf: str) -> Session:
    """The session of a form post whose CSRF token and origin are right, or ``CsrfRefused``."""
    session = await session_of(request)
    if not same_origin(request):
        raise CsrfRefused
    if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
        raise CsrfRefused
    return session


def same_origin(request: Request) -> bool:
    """False for a form another site's page posted (browsers send ``Origin`` on every POST)."""
    origin = request.headers.get("origin")
    return origin is None or origin == _own_origin(request)


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")

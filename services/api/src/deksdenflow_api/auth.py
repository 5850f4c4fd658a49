"""Authentication: admin bearer tokens, and per-project tokens that see only their project.

* ``Authorization: Bearer <token>`` with one of ``DEKSDENFLOW_API_TOKEN`` (comma-separated) → admin.
* ``X-Project-Token: <token>`` → that project only. Project tokens are created by the API, shown once,
  and only their SHA-256 is kept (in the log and in the read model's ``project_tokens``).
Comparisons are constant-time. Secrets never enter the event log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from deksdenflow_core.readmodel import SCHEMA
from fastapi import Depends, Request

from deksdenflow_api.context import ApiContext, context_of
from deksdenflow_api.errors import HttpError

TOKEN_PREFIX = "dfp_"  # noqa: S105  (a public prefix that marks project tokens, not a secret)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin, or one project's token."""

    project_id: str | None = None
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.project_id is None

    @property
    def actor(self) -> str:
        return "user:admin" if self.is_admin else f"token:{self.token_id}"

    def require_project(self, project_id: str) -> None:
        """403 unless this principal may act on ``project_id``."""
        if not self.is_admin and project_id != self.project_id:
            raise HttpError(403, "forbidden", "this project token does not give access to that project")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise HttpError(403, "forbidden", "only an admin token may do this")


def new_project_token() -> tuple[str, str]:
    """A fresh token and its SHA-256 hex."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="deksdenflow"'}


async def authenticate(request: Request) -> Principal:
    """The caller, or 401."""
    return await principal_of(request, context_of(request))


async def principal_of(request: Request, ctx: ApiContext) -> Principal:
    """``authenticate`` for a dependency that has the context already."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return admin_principal(ctx, token)
        raise HttpError(401, "unauthorized", "invalid bearer token", headers=_UNAUTHORIZED)
    project_token = request.headers.get("x-project-token")
    if project_token:
        return await project_principal(ctx, project_token)
    raise HttpError(
        401,
        "unauthorized",
        "send Authorization: Bearer <admin token> or X-Project-Token",
        headers=_UNAUTHORIZED,
    )


def admin_principal(ctx: ApiContext, token: str) -> Principal:
    """The admin, if ``token`` is one of the admin tokens; 401 otherwise."""
    given = token.encode()
    for admin in ctx.admin_tokens:
        if hmac.compare_digest(given, admin):
            return Principal()
    raise HttpError(401, "unauthorized", "invalid bearer token", headers=_UNAUTHORIZED)


async def project_principal(ctx: ApiContext, token: str) -> Principal:
    """The project whose live token ``token`` is; 401 otherwise."""
    digest = token_hash(token.strip())
    # A token issued (or revoked) through this process is known once the read model has it.
    await ctx.read_own_writes()
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            f'SELECT token_id, project_id, token_hash FROM "{SCHEMA}".project_tokens '
            "WHERE token_hash = $1 AND revoked_at IS NULL",
            digest,
        )
    if row is not None and hmac.compare_digest(row["token_hash"], digest):
        return Principal(project_id=row["project_id"], token_id=row["token_id"])
    raise HttpError(401, "unauthorized", "invalid or revoked project token", headers=_UNAUTHORIZED)


async def principal_for_token(ctx: ApiContext, token: str) -> Principal:
    """Either kind of token, told apart by the project tokens' prefix (the console's sign-in)."""
    token = token.strip()
    if token.startswith(TOKEN_PREFIX):
        return await project_principal(ctx, token)
    return admin_principal(ctx, token)


PrincipalDep = Annotated[Principal, Depends(authenticate)]

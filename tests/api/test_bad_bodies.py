"""A body that is not UTF-8 or not JSON is bad input on every route: 422 in the project's error shape.

The routes are read from the API's own OpenAPI schema, so a route added later is covered without being
named here. A route that takes a body answers 422 ``{"code", "message"}``; a route that takes none ignores
whatever body is sent and still answers in the project's shape (here 404: the ids do not exist; a route
that names nothing answers as it does without a body), never FastAPI's ``{"detail": ...}`` 400.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest
from deksdenflow_api.app import create_app
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings

from tests.api.conftest import WEBHOOK_TOKEN, System

# Bodies a client may send by mistake (or an attacker on purpose), with the content type they come with.
BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("invalid-utf8-json", b'{"name": "caf\xe9", "git_url": "\xff\xfe"}', "application/json"),
    ("invalid-utf8-bare", b"\xff\xfe\xfd", "application/json"),
    ("not-json", b"{not json", "application/json"),
    ("truncated-json", b'{"name": "demo", ', "application/json"),
    ("text", b"hello", "text/plain"),
    ("invalid-utf8-text", b"\xc3\x28", "text/plain; charset=utf-8"),
]
# Paths read raw bodies themselves (the signature covers their exact bytes): they are not in the schema's
# requestBody but read a body all the same.
RAW_BODY_PATHS = {"/webhooks/github", "/webhooks/gitlab"}
_PATH_VALUES = {"action": "cancel", "branch": "0001-nothing", "token_id": "tok-none"}


def _routes() -> list[tuple[str, str, bool]]:
    """(method, path, takes a body) for every POST/PUT/PATCH operation of the schema."""
    app = create_app(ApiSettings(), event_store=EventStoreSettings(), database=DatabaseSettings())
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch"):
                routes.append((method, path, "requestBody" in operation or path in RAW_BODY_PATHS))
    return sorted(routes)


ROUTES = _routes()


def _url(path: str) -> str:
    if path.startswith("/steps/"):
        path = path.replace("{action}", "run")
    for name, value in _PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "00000000-0000-0000-0000-000000000000" + path[end + 1 :]
    return path


def _headers(path: str, body: bytes, content_type: str) -> dict[str, str]:
    """Credentials as each route wants them, so that only the body can be at fault."""
    headers = {"Content-Type": content_type}
    if path == "/webhooks/github":
        digest = hmac.new(WEBHOOK_TOKEN.encode(), body, hashlib.sha256).hexdigest()
        headers |= {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": f"sha256={digest}"}
    elif path == "/webhooks/gitlab":
        headers |= {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": WEBHOOK_TOKEN}
    return headers


def _project_shape(response: httpx.Response) -> dict[str, Any]:
    body: Any = response.json()
    assert isinstance(body, dict), response.text
    assert isinstance(body.get("code"), str), response.text
    assert body["code"], response.text
    assert isinstance(body.get("message"), str), response.text
    assert body["message"], response.text
    assert "detail" not in body, response.text
    return body


def test_the_schema_has_routes_with_bodies() -> None:
    assert sum(1 for _, _, takes_body in ROUTES if takes_body) >= 8


@pytest.mark.parametrize(("method", "path", "takes_body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_a_body_that_is_not_utf8_or_not_json_is_a_422_in_the_projects_shape(
    system: System, method: str, path: str, takes_body: bool
) -> None:
    async with system.admin() as api:
        for name, body, content_type in BAD_BODIES:
            response = await api.request(
                method.upper(), _url(path), content=body, headers=_headers(path, body, content_type)
            )
            if takes_body:
                assert response.status_code == 422, (name, response.status_code, response.text)
            elif "{" not in path:  # a route that takes nothing (the spec audit): the body is not read
                assert response.status_code == 200, (name, response.status_code, response.text)
                continue
            else:  # the body is not read; the (unknown) ids decide the answer
                assert response.status_code == 404, (name, response.status_code, response.text)
            _project_shape(response)

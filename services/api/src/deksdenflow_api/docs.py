"""``/docs`` (Swagger UI) and ``/redoc`` from assets packaged with the API (PyPI ``fastapi-offline``), no CDN.

The OpenAPI schema declares the two ways to authenticate (admin bearer token, ``X-Project-Token``), so
Swagger UI's Authorize button takes either and sends it with "Try it out".
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# Routes that take no token: the probes, /metrics, the webhooks (signed by the provider), the pages.
_OPEN = ("/livez", "/health", "/readyz", "/metrics", "/webhooks/")
# The pages use only the packaged assets (and their own inline bootstrap): the browser fetches nothing else,
# not even the logo ReDoc would load from its CDN.
CSP = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
}
SECURITY_SCHEMES = {
    "AdminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin token (DEKSDENFLOW_API_TOKEN).",
    },
    "ProjectToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Project-Token",
        "description": "A project token (dfp_…): that project only.",
    },
}


def install(app: FastAPI) -> None:
    static = str(resources.files("fastapi_offline") / "static")
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )
        page.headers.update(CSP)
        return page

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(CSP)
        return page

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(_OPEN):
                    continue
                for operation in operations.values():
                    operation["security"] = [{"AdminToken": []}, {"ProjectToken": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

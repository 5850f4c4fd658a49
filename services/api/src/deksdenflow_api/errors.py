"""The HTTP edge of the error hierarchy: one JSON shape, status codes chosen by error class only here."""

from __future__ import annotations

from typing import Any

import asyncpg
from deksdenflow_core.errors import (
    ConcurrencyConflict,
    ContractError,
    DeksdenflowError,
    IllegalTransition,
    InfrastructureError,
    InvalidCommand,
    NotFound,
)
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException  # what FastAPI raises for a body it cannot decode


class ErrorBody(BaseModel):
    """Every error response: a stable ``code``, a human ``message``, and structured fields."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class HttpError(DeksdenflowError):
    """An error that is only about HTTP (auth, headers, idempotency) with its status code."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(message, **fields)
        self.status = status
        self.code = code
        self.headers = headers or {}


def status_of(exc: DeksdenflowError) -> int:
    """The HTTP status for an error of the hierarchy."""
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IllegalTransition | ConcurrencyConflict):
        return 409
    if isinstance(exc, InvalidCommand | ContractError):
        return 422
    if isinstance(exc, InfrastructureError):
        return 503
    return 400


def error_response(exc: DeksdenflowError) -> JSONResponse:
    headers = dict(exc.headers) if isinstance(exc, HttpError) else {}
    if isinstance(exc, InfrastructureError):
        headers.setdefault("Retry-After", "1")
    return JSONResponse(exc.to_dict(), status_code=status_of(exc), headers=headers)


def install(app: FastAPI) -> None:
    """Map the hierarchy (and request validation) to JSON error responses."""

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, DeksdenflowError):  # registered for that class only
            raise exc
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):
            raise exc
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        body = {"code": "invalid_request", "message": "the request is not valid", "errors": errors}
        return JSONResponse(body, status_code=422)

    async def on_unreadable_body(request: Request, exc: Exception) -> Response:
        # FastAPI answers a body it cannot decode (not UTF-8, ...) with its own 400 {"detail"}, raised
        # from the decoding error; that is bad input like any other: 422 in our shape. Every other HTTP
        # error of the framework keeps its default answer.
        if not isinstance(exc, HTTPException):
            raise exc
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            reason = type(exc.__cause__).__name__
            body = {
                "code": "invalid_body",
                "message": f"the request body cannot be read as UTF-8 JSON ({reason})",
            }
            return JSONResponse(body, status_code=422)
        return await http_exception_handler(request, exc)

    async def on_missing_read_model(_: Request, exc: Exception) -> JSONResponse:
        body = {
            "code": "read_model_not_ready",
            "message": "the read model is not migrated yet; retry shortly",
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    async def on_database_down(_: Request, exc: Exception) -> JSONResponse:
        body = {"code": "database_unavailable", "message": f"the read-model database does not answer: {exc}"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    app.add_exception_handler(DeksdenflowError, on_error)
    # PostgreSQL down or refusing connections is a 503 to retry, not a 500.
    for down in (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
    ):
        app.add_exception_handler(down, on_database_down)
    # The projector migrates the read model when it starts; until then reads answer 503, not 500.
    app.add_exception_handler(asyncpg.UndefinedTableError, on_missing_read_model)
    app.add_exception_handler(asyncpg.InvalidSchemaNameError, on_missing_read_model)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_unreadable_body)


# OpenAPI documentation of the error responses, reused by every route.
def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        401: "Missing or invalid credentials.",
        403: "The credentials do not give access to this project.",
        404: "No such resource.",
        409: "Illegal in the current status (the body names it), a lost race, "
        "or a repeated Idempotency-Key still in progress.",
        413: "The body is larger than the limit.",
        422: "The request body or parameters are invalid.",
        503: "NATS or PostgreSQL is unavailable, "
        "or the read model has not reached the requested sequence yet.",
    }
    return {s: {"model": ErrorBody, "description": meaning[s]} for s in statuses}

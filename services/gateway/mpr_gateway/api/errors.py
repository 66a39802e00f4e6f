"""One error shape for every 4xx/5xx: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mpr_gateway.domain.errors import (
    Conflict,
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RetryLater,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from mpr_shared.http_errors import error_response, install_common_handlers

STATUS: dict[type[GatewayError], int] = {
    InvalidRequest: 422,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unauthorized: 401,
    RateLimited: 429,
    Unavailable: 503,
}
TOO_DEEP = "the JSON body is nested too deeply to parse; send a flatter document"


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What is wrong and how to fix it.")
    details: Any = Field(None, description="Structured detail (invalid fields, valid values…).")


class ErrorResponse(BaseModel):
    error: ErrorBody


def gateway_error_response(exc: GatewayError) -> JSONResponse:
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    headers: dict[str, str] = {}
    if isinstance(exc, RetryLater):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="mpr"'
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _http_message(exc: StarletteHTTPException) -> str:
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for a body json cannot parse
        return TOO_DEEP
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        return "no such endpoint; the API is described at /docs"
    return message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return gateway_error_response(exc)

    install_common_handlers(
        app, service="gateway", validation_error=RequestValidationError, http_message=_http_message
    )

"""The one error shape of MPR's HTTP APIs: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{field, message, type}``, the body's own prefix left out."""
    return [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "message": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in errors
    ]


def install_common_handlers(
    app: Starlette,
    *,
    service: str,
    validation_error: type[Exception],
    http_message: Callable[[HTTPException], str],
) -> None:
    """Handlers every MPR API shares: request validation, HTTP errors and the unexpected.

    ``validation_error`` is FastAPI's ``RequestValidationError`` (kept out of ``shared/``'s
    dependencies); ``http_message`` words an HTTP error for this service (its 404 text).
    """

    async def _validation(_: Request, exc: Exception) -> Response:
        details = validation_details(exc.errors())  # type: ignore[attr-defined]  # pydantic's API
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        return error_response(422, "validation_error", f"invalid request: {summary}", details)

    async def _http(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            raise exc
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, http_message(exc), headers=exc.headers)

    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", f"unexpected error; see the {service} log")

    app.add_exception_handler(validation_error, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)

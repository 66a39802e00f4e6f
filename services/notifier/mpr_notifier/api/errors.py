"""One error shape, the gateway's: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mpr_shared.http_errors import error_response, install_common_handlers

NOT_FOUND = "no such endpoint; the notifier serves /api/events (described at /api/docs)"


class ApiError(Exception):
    """A request the notifier refuses: its status, a stable code and what to do about it."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _http_message(exc: HTTPException) -> str:
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return NOT_FOUND if exc.status_code == 404 and message == "Not Found" else message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _refused(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    install_common_handlers(
        app, service="notifier", validation_error=RequestValidationError, http_message=_http_message
    )

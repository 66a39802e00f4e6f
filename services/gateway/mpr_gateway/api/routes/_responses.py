"""OpenAPI descriptions of the error responses, so clients (and schemathesis) know the shape."""

from __future__ import annotations

from typing import Any

from mpr_gateway.api.errors import ErrorResponse

_TEXT = {
    401: "Missing or invalid API key.",
    404: "Not found.",
    409: "Conflict with the current state.",
    413: "Request body too large (MAX_BODY_BYTES).",
    422: "Invalid request; the message says what to fix.",
    429: "Too many requests from this client; retry after Retry-After seconds.",
    503: "A dependency is unavailable; retry after Retry-After seconds.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": _TEXT[code]} for code in codes}

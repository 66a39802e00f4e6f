"""Errors the application raises; the REST and GraphQL adapters map them to responses."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base error: a stable machine-readable code, a message that says how to fix it."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(GatewayError):
    code = "invalid_request"


class NotFound(GatewayError):
    code = "not_found"


class Conflict(GatewayError):
    code = "conflict"


class TooLarge(GatewayError):
    """The thing to store is larger than the configured limit."""

    code = "too_large"


class Unauthorized(GatewayError):
    code = "unauthorized"


class RetryLater(GatewayError):
    """Not now: the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Unavailable(RetryLater):
    """A dependency is down."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, retry_after=retry_after, details=details)


class RateLimited(RetryLater):
    """The caller asked more often than its limit allows."""

    code = "rate_limited"

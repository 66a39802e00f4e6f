"""API-key authentication: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers

from mpr_gateway.domain.errors import Unauthorized


class ApiKeys:
    """Checks a presented key against every configured key in constant time."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(name, key.encode()) for name, key in keys.items()]

    def authenticate(self, headers: Headers) -> str:
        """The client's name for a valid key; Unauthorized otherwise."""
        if not self._keys:
            raise Unauthorized(
                "no API keys are configured on this gateway: set MPR_API_KEYS (for example "
                "MPR_API_KEYS=dev:<random>; scripts/dev.sh generates one) and send it as "
                "'Authorization: Bearer <key>'"
            )
        presented = _presented(headers)
        if presented is None:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        candidate = presented.encode()
        found = None
        for name, key in self._keys:  # compare with all keys so timing reveals nothing
            if hmac.compare_digest(candidate, key) and found is None:
                found = name
        if found is None:
            raise Unauthorized("invalid API key; check MPR_API_KEYS on the gateway")
        return found


def _presented(headers: Headers) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None

"""API-key authentication: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (mpr_shared.auth
finds and checks the key; this says what is wrong in the gateway's words)."""

from __future__ import annotations

from collections.abc import Mapping

from mpr_gateway.domain.errors import Unauthorized
from mpr_shared.auth import ApiKeys, presented_key


def authenticate(keys: ApiKeys, headers: Mapping[str, str]) -> str:
    """The client's name for a valid key; Unauthorized otherwise."""
    if not keys:
        raise Unauthorized(
            "no API keys are configured on this gateway: set MPR_API_KEYS (for example "
            "MPR_API_KEYS=dev:<random>; scripts/dev.sh generates one) and send it as "
            "'Authorization: Bearer <key>'"
        )
    presented = presented_key(headers)
    if presented is None:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    client = keys.client(presented)
    if client is None:
        raise Unauthorized("invalid API key; check MPR_API_KEYS on the gateway")
    return client

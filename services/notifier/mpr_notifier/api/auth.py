"""API keys on the SSE stream: the shared rules, the notifier's policy."""

from __future__ import annotations

from collections.abc import Mapping

from mpr_notifier.api.errors import ApiError
from mpr_shared.auth import ApiKeys, presented_key

UNAUTHORIZED = "missing or invalid API key (Authorization: Bearer KEY, X-API-Key or ?api_key=)"


def authenticated_client(
    keys: ApiKeys, headers: Mapping[str, str], query_key: str | None
) -> str | None:
    """The caller's client name; 401 unless it presents one of MPR_API_KEYS.

    No keys configured: open, which only development and test allow (the settings refuse
    production without MPR_API_KEYS)."""
    if not keys:
        return None
    client = keys.client(presented_key(headers, query_key))
    if client is None:
        raise ApiError(401, "unauthorized", UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    return client

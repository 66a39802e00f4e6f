"""API keys for every service that serves HTTP: parsing MPR_API_KEYS, finding the presented key,
and a constant-time check against every configured key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping


class ApiKeys:
    """The configured keys by client name; ``client()`` names the caller of a presented key."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(name, key.encode()) for name, key in keys.items()]

    @classmethod
    def parse(cls, raw: str) -> ApiKeys:
        """``name:key`` pairs or bare keys, comma-separated; bare keys are named key1, key2, ..."""
        keys: dict[str, str] = {}
        for index, item in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
            name, sep, key = item.partition(":")
            name, key = (name.strip(), key.strip()) if sep else (f"key{index}", name.strip())
            if not key:
                raise ValueError(f"MPR_API_KEYS entry {index} ({name!r}) has an empty key")
            keys[name] = key
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def by_name(self) -> dict[str, str]:
        """Name to key, e.g. for the production check of placeholder secrets."""
        return {name: key.decode() for name, key in self._keys}

    def client(self, presented: str | None) -> str | None:
        """The client name of ``presented``, or None; every key is compared, so timing reveals
        nothing about which one came close."""
        if not presented:
            return None
        candidate = presented.encode()
        found = None
        for name, key in self._keys:
            if hmac.compare_digest(candidate, key) and found is None:
                found = name
        return found


def presented_key(headers: Mapping[str, str], query_key: str | None = None) -> str | None:
    """The key a request presents: ``Authorization: Bearer``, else ``X-API-Key``, else the
    ``api_key`` query parameter (browser EventSource clients cannot send headers)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    header = headers.get("x-api-key")
    if header and header.strip():
        return header.strip()
    return query_key.strip() if query_key and query_key.strip() else None

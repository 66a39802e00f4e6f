"""Opaque keyset cursors: the sort key of the last row, base64url-encoded, tagged by listing."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mpr_gateway.domain.errors import InvalidRequest


def encode_cursor(listing: str, values: list[Any]) -> str:
    """A cursor for ``listing`` ('jobs', 'assets') positioned after the row with ``values``."""
    raw = json.dumps([listing, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(listing: str, cursor: str, arity: int) -> list[Any]:
    """The sort-key values in ``cursor``; InvalidRequest when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        data = None
    if not isinstance(data, list) or len(data) != arity + 1 or data[0] != listing:
        raise InvalidRequest(
            f"cursor is not a valid {listing} cursor; pass the next_cursor of a previous "
            f"{listing} page unchanged, or omit it for the first page"
        )
    return data[1:]

"""S3 key rules (mpr_shared.keys, as InvalidRequest) and the deterministic output-key layout."""

from __future__ import annotations

from pathlib import PurePosixPath
from uuid import UUID

from mpr_gateway.domain.errors import InvalidRequest
from mpr_shared import keys
from mpr_shared.contracts import JobKind
from mpr_shared.keys import MAX_KEY_BYTES

__all__ = ["MAX_KEY_BYTES", "check_key", "check_output_key", "check_text", "default_output_key"]


def check_text(value: str, field: str) -> str:
    """mpr_shared.keys.check_text, raising InvalidRequest."""
    try:
        return keys.check_text(value, field)
    except keys.InvalidKey as exc:
        raise InvalidRequest(str(exc)) from None


def check_key(key: str, field: str = "key", *, allow_empty: bool = False) -> str:
    """mpr_shared.keys.check_key, raising InvalidRequest."""
    try:
        return keys.check_key(key, field, allow_empty=allow_empty)
    except keys.InvalidKey as exc:
        raise InvalidRequest(str(exc)) from None


def key_stem(key: str) -> str:
    """The key without its extension ('a/b.mp4' → 'a/b')."""
    suffix = PurePosixPath(key).suffix
    return key[: -len(suffix)] if suffix else key


def default_output_key(
    source_key: str, job_id: UUID, kind: JobKind, preset: str | None, extension: str
) -> str:
    """``<source without extension>/<job id>/<preset or kind><ext>``; HLS gets a prefix '…/'."""
    name = preset or kind.value
    base = f"{key_stem(source_key)}/{job_id}/{name}"
    return f"{base}/" if kind is JobKind.HLS else f"{base}{extension}"


def check_output_key(key: str, kind: JobKind, extension: str) -> str:
    """Validate a user-chosen output key: HLS wants a prefix ending in '/', files an extension."""
    check_key(key, "output_key")
    if kind is JobKind.HLS:
        if not key.endswith("/"):
            raise InvalidRequest(
                "output_key of an HLS job is a prefix ending in '/' (master.m3u8 goes inside); "
                f"use {key + '/'!r}"
            )
        return key
    if key.endswith("/"):
        raise InvalidRequest(f"output_key must name a file ending in {extension!r}, not a prefix")
    if PurePosixPath(key).suffix.lower() != extension:
        raise InvalidRequest(
            f"output_key must end in {extension!r} for this job (the output's format); "
            f"for example {key_stem(key) + extension!r}"
        )
    return key

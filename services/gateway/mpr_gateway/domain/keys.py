"""S3 key rules and the deterministic output-key layout (see the brief's conventions)."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath
from uuid import UUID

from mpr_gateway.domain.errors import InvalidRequest
from mpr_shared.contracts import JobKind

MAX_KEY_BYTES = 1024  # S3's limit on an object key.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html


def check_text(value: str, field: str) -> str:
    """Reject text no database or S3 call can carry: control characters, lone surrogates."""
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise InvalidRequest(
            f"{field} must not contain control characters (newlines, tabs, NUL) or invalid "
            "Unicode (lone surrogates)"
        )
    return value


def check_key(key: str, field: str = "key", *, allow_empty: bool = False) -> str:
    """Return ``key`` if it is a safe S3 key (not a path); raise InvalidRequest otherwise."""
    if not key:
        if allow_empty:
            return key
        raise InvalidRequest(f"{field} is empty; give an S3 object key such as 'videos/clip.mp4'")
    if key.startswith("/"):
        raise InvalidRequest(
            f"{field} must not start with '/': S3 keys are relative (use {key.lstrip('/')!r})"
        )
    if any(segment == ".." for segment in key.split("/")):
        raise InvalidRequest(f"{field} must not contain '..' segments; S3 keys are not paths")
    check_text(key, field)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidRequest(
            f"{field} is {len(key.encode('utf-8'))} bytes in UTF-8; S3 keys are at most "
            f"{MAX_KEY_BYTES} bytes"
        )
    return key


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

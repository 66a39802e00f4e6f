"""Supported media file types: the storage spec's lists, in one place."""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath


class MediaType(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".wmv", ".m4v"}
)
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".mp3", ".wav", ".flac", ".aac", ".ogg", ".m4a"})
MEDIA_EXTENSIONS: frozenset[str] = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS


def extension(key: str) -> str:
    """Lower-cased extension of an S3 key ('' when it has none)."""
    return PurePosixPath(key).suffix.lower()


def media_type(key: str) -> MediaType | None:
    """Video, audio, or None when the key's extension is not supported."""
    ext = extension(key)
    if ext in VIDEO_EXTENSIONS:
        return MediaType.VIDEO
    if ext in AUDIO_EXTENSIONS:
        return MediaType.AUDIO
    return None


def is_supported(key: str) -> bool:
    return media_type(key) is not None

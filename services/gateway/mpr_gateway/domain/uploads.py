"""Uploads into the input bucket: which key, how many parts, and the state machine.

An upload is ``pending`` until the client completes it (``completed``), deletes it
(``aborted``) or leaves it past its time to live (``expired``); only a pending upload moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from uuid import UUID

from mpr_gateway.domain.errors import Conflict, InvalidRequest, TooLarge
from mpr_gateway.domain.keys import check_key
from mpr_shared.media import MEDIA_EXTENSIONS, extension, is_supported

MiB = 1024 * 1024
# S3's multipart limits: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
MAX_PARTS = 10_000
MAX_PART_BYTES = 5 * 1024 * MiB
MAX_SINGLE_PUT_BYTES = 5 * 1024 * MiB


class UploadStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"


class UploadMode(StrEnum):
    SINGLE = "single"
    MULTIPART = "multipart"


@dataclass(frozen=True, slots=True)
class PartPlan:
    """How a file of ``size`` bytes is sent: one PUT, or ``count`` parts of ``part_size``."""

    mode: UploadMode
    part_size: int | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part as S3 lists it (ListParts)."""

    number: int
    size: int
    etag: str


@dataclass(slots=True)
class UploadRecord:
    """One row of ``uploads``."""

    id: UUID
    bucket: str
    key: str
    size_bytes: int
    mode: str
    created_at: datetime
    expires_at: datetime
    status: str = UploadStatus.PENDING.value
    content_type: str | None = None
    part_size: int | None = None
    multipart_id: str | None = None
    client: str | None = None
    finished_at: datetime | None = None

    @property
    def part_count(self) -> int:
        if self.part_size is None:
            return 1
        return max(1, -(-self.size_bytes // self.part_size))

    def part_bytes(self, number: int) -> int:
        """How many bytes part ``number`` holds: ``part_size``, the last one the rest."""
        size = self.part_size or self.size_bytes
        return size if number < self.part_count else self.size_bytes - size * (number - 1)

    def require_pending(self, action: str) -> None:
        if self.status != UploadStatus.PENDING:
            raise Conflict(
                f"upload {self.id} is {self.status}; only a pending upload can be {action}",
                details={"status": self.status},
            )


def upload_key(key: str | None, filename: str | None) -> str:
    """The object key: ``key``, else the filename's last path segment; both checked like job
    keys, with a supported media extension."""
    if key is None:
        if not filename:
            raise InvalidRequest("give the object's key or the file's name (filename)")
        key, field = PurePosixPath(filename.replace("\\", "/")).name, "filename"
    else:
        field = "key"
    check_key(key, field)
    if key.endswith("/"):
        raise InvalidRequest(f"{field} must name a file, not a prefix ending in '/'")
    if not is_supported(key):
        found = extension(key) or "no extension"
        raise InvalidRequest(
            f"{field} must end in a supported media extension (found {found!r})",
            details={"supported": sorted(MEDIA_EXTENSIONS)},
        )
    return key


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise TooLarge(
            f"the file is {size} bytes; uploads are at most {limit} bytes (MAX_UPLOAD_BYTES)",
            details={"size": size, "max_bytes": limit},
        )


def plan_parts(size: int, threshold: int, min_part: int) -> PartPlan:
    """One PUT up to ``threshold`` bytes; above it parts of at least ``min_part`` bytes, grown
    in whole MiB so that no file needs more than 10,000 parts."""
    if size <= min(threshold, MAX_SINGLE_PUT_BYTES):
        return PartPlan(UploadMode.SINGLE)
    needed = -(-size // MAX_PARTS)
    part_size = max(min_part, -(-needed // MiB) * MiB)
    if part_size > MAX_PART_BYTES:
        raise TooLarge(f"the file is {size} bytes; S3 stores at most 5 TiB in one object")
    return PartPlan(UploadMode.MULTIPART, part_size, -(-size // part_size))


def check_part_numbers(numbers: list[int], count: int) -> list[int]:
    """Part numbers of this upload, each once, in order."""
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise InvalidRequest(
            f"this upload has parts 1 to {count}; no part {wrong[0]}",
            details={"part_count": count},
        )
    return sorted(set(numbers))


def choose_parts(
    upload: UploadRecord, stored: list[StoredPart], given: dict[int, str]
) -> list[StoredPart]:
    """The parts to complete ``upload`` with, one per number, each of the size the plan gives
    it. A part sent twice is listed twice by some servers (SeaweedFS): the copy of the right
    size (and of the ETag the client gave, if it gave one) is the one to keep."""
    numbers = range(1, upload.part_count + 1)
    missing = [n for n in numbers if not any(p.number == n for p in stored)]
    if missing:
        raise Conflict(
            f"{len(missing)} of {upload.part_count} parts are missing (first: part "
            f"{missing[0]}); upload them, then complete",
            details={"missing": missing[:100]},
        )
    chosen: list[StoredPart] = []
    for n in numbers:
        fitting = [p for p in stored if p.number == n and p.size == upload.part_bytes(n)]
        if not fitting:
            size = next(p.size for p in reversed(stored) if p.number == n)
            raise InvalidRequest(
                f"part {n} holds {size} bytes, not {upload.part_bytes(n)}; send it again "
                "(POST /api/uploads/{id}/parts for a fresh URL), then complete",
                details={"part_number": n, "size": size, "expected": upload.part_bytes(n)},
            )
        if n in given:
            etag = given[n].strip('"')
            fitting = [p for p in fitting if p.etag.strip('"') == etag]
            if not fitting:
                raise Conflict(
                    f"part {n} in S3 is not the one you sent (ETag {given[n]!r}); it was sent "
                    "again since: complete without parts, or send its current ETag"
                )
        chosen.append(fitting[-1])
    return chosen

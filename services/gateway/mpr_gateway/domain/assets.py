"""Assets as the gateway reads them (the catalog writes the ``assets`` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(slots=True)
class AssetRecord:
    """One row of ``assets``."""

    id: UUID
    bucket: str
    key: str
    media_type: str
    size_bytes: int
    etag: str
    status: str
    probe_status: str
    created_at: datetime
    updated_at: datetime
    probe_error: str | None = None
    probe: dict[str, Any] | None = None
    duration_seconds: float | None = None
    deleted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

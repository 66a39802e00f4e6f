"""Keyset pages, as every listing returns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

DEFAULT_PAGE = 50
MAX_PAGE = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

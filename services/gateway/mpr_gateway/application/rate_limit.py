"""A per-caller rate limit: a token bucket per client name, in this process's memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mpr_gateway.domain.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(slots=True)
class RateLimit:
    """Up to ``per_minute`` calls a minute per client, in bursts of up to ``per_minute``.

    Callers are the configured API keys' names, so the buckets are as many as the keys. Each
    replica counts on its own: N replicas let a client through N times as often.
    """

    per_minute: int
    what: str
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str) -> None:
        """Count one call of ``client``; RateLimited (with when to retry) over the limit."""
        now = self.clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.setdefault(client, _Bucket(float(self.per_minute), now))
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise RateLimited(
                f"too many {self.what} requests from {client!r}: at most {self.per_minute} "
                f"a minute; retry in {wait}s",
                retry_after=wait,
                details={"limit_per_minute": self.per_minute, "retry_after_seconds": wait},
            )
        bucket.tokens -= 1.0

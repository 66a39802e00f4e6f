"""Which events an SSE client wants: by job, by asset and by event type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from mpr_shared.contracts import EVENTS_BY_ROUTING_KEY

EVENT_TYPES: dict[str, str] = {cls.__name__: key for key, cls in EVENTS_BY_ROUTING_KEY.items()}
_PATTERN = re.compile(r"^(?:[a-z0-9_-]+|\*|#)(?:\.(?:[a-z0-9_-]+|\*|#))*$")


class InvalidFilter(ValueError):
    """A filter parameter the client sent cannot be understood."""


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: '*' is exactly one word, '#' is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])


@dataclass(frozen=True)
class EventFilter:
    """Matches events by job id, asset id and routing-key patterns (all optional)."""

    job_id: str | None = None
    asset_id: str | None = None
    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, *, job_id: str | None = None, asset_id: str | None = None, types: str | None = None
    ) -> EventFilter:
        """Validate query parameters; raises InvalidFilter with a message for the client."""
        return cls(
            job_id=_uuid("job_id", job_id),
            asset_id=_uuid("asset_id", asset_id),
            patterns=tuple(_pattern(t) for t in (types or "").split(",") if t.strip()),
        )

    def matches(self, routing_key: str, job_id: str | None, asset_id: str | None) -> bool:
        if self.job_id is not None and job_id != self.job_id:
            return False
        if self.asset_id is not None and asset_id != self.asset_id:
            return False
        return not self.patterns or any(topic_matches(p, routing_key) for p in self.patterns)


def _uuid(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidFilter(f"{name} must be a UUID, got {value!r}") from None


def _pattern(token: str) -> str:
    token = token.strip()
    if token in EVENT_TYPES:
        return EVENT_TYPES[token]
    if _PATTERN.match(token):
        return token
    known = ", ".join(sorted(EVENT_TYPES))
    raise InvalidFilter(
        f"unknown event type {token!r}: use a routing key or pattern (job.completed, job.*, "
        f"asset.#) or a type name ({known})"
    )

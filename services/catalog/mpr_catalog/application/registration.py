"""Registering objects seen in the bucket: a listed page, or one object on its own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mpr_catalog.application import messages
from mpr_catalog.application.ports import ProbeQueue, UnitOfWork, UnitOfWorkFactory
from mpr_catalog.domain.assets import (
    AssetState,
    NewAsset,
    ObjectInfo,
    PagePlan,
    RefusedKey,
    content_change,
    key_refusal,
    media_type_of,
    new_asset,
    plan_page,
    renewed,
)
from mpr_shared.contracts import Message

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Registered:
    """What registering a page did, object by object."""

    new: list[NewAsset] = field(default_factory=list)
    reactivated: list[AssetState] = field(default_factory=list)
    updated: list[AssetState] = field(default_factory=list)
    unchanged: int = 0
    refused: list[RefusedKey] = field(default_factory=list)

    @property
    def found(self) -> int:
        """Supported media objects that were offered (refused ones aside)."""
        return len(self.new) + len(self.reactivated) + len(self.updated) + self.unchanged

    @property
    def to_probe(self) -> list[uuid.UUID]:
        return [a.id for a in self.new] + [a.id for a in self.reactivated + self.updated]


class Registrar:
    """Registers objects of one bucket: new, changed and returning ones, a page per transaction."""

    def __init__(self, uow: UnitOfWorkFactory, probes: ProbeQueue, bucket: str) -> None:
        self._uow = uow
        self._probes = probes
        self.bucket = bucket

    async def register_object(self, obj: ObjectInfo, envelope: messages.Envelope) -> Registered:
        """Register one object seen now (e.g. right after an upload)."""
        return await self.register([obj], seen_at=utcnow(), envelope=envelope)

    async def register(
        self, objects: Sequence[ObjectInfo], *, seen_at: datetime, envelope: messages.Envelope
    ) -> Registered:
        """Register media ``objects`` listed at ``seen_at``; refused keys are skipped."""
        media = [obj for obj in objects if media_type_of(obj.key) is not None]
        accepted, refused = _screen(media)
        async with self._uow() as uow:
            known = await uow.assets.find(self.bucket, [obj.key for obj in accepted])
            result = await self._write(uow, plan_page(accepted, known, seen_at), envelope)
            await uow.commit()
        result.refused = refused
        self._probes.submit(result.to_probe)
        return result

    async def _write(
        self, uow: UnitOfWork, plan: PagePlan, envelope: messages.Envelope
    ) -> Registered:
        """Insert the new assets and apply the changes; what a concurrent writer won is skipped."""
        new = [new_asset(self.bucket, obj) for obj in plan.new]
        inserted = await uow.assets.insert(new)
        renewals = plan.reactivated + plan.changed
        applied = await uow.assets.apply([content_change(a, obj) for a, obj in renewals])
        result = Registered(new=[a for a in new if a.key in inserted])
        reactivated = [(a, obj) for a, obj in plan.reactivated if a.id in applied]
        changed = [(a, obj) for a, obj in plan.changed if a.id in applied]
        result.reactivated = [a for a, _ in reactivated]
        result.updated = [a for a, _ in changed]
        result.unchanged = plan.unchanged + len(plan.new) + len(renewals) - len(result.to_probe)
        caused: list[Message] = [messages.registered(a, envelope) for a in result.new]
        caused += [messages.registered(renewed(a, obj), envelope) for a, obj in reactivated]
        caused += [messages.updated(a, obj, envelope) for a, obj in changed]
        uow.outbox.add(*caused)
        return result


def _screen(objects: Sequence[ObjectInfo]) -> tuple[list[ObjectInfo], list[RefusedKey]]:
    """Split objects into those whose keys the catalog registers and those it refuses."""
    accepted: list[ObjectInfo] = []
    refused: list[RefusedKey] = []
    for obj in objects:
        reason = key_refusal(obj.key)
        if reason is None:
            accepted.append(obj)
        else:
            log.warning("not registering key %a: %s", obj.key, reason)
            refused.append(RefusedKey(obj.key, reason))
    return accepted, refused

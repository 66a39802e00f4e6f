"""Applying bucket notifications: each record's decision, written with compare-and-set."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from mpr_catalog.application import messages
from mpr_catalog.application.ports import ProbeQueue, UnitOfWork, UnitOfWorkFactory
from mpr_catalog.application.registration import utcnow
from mpr_catalog.domain.assets import (
    ACTIVE,
    DELETED,
    AssetChange,
    AssetState,
    ObjectInfo,
    content_change,
    key_refusal,
    media_type_of,
    new_asset,
    removal,
    renewed,
    touch,
)
from mpr_catalog.domain.notifications import (
    Action,
    Decision,
    Notification,
    ObjectChange,
    decide,
)
from mpr_shared.contracts import Message

log = logging.getLogger(__name__)

# Compare-and-set retries when another writer changed the same asset in between.
CAS_ATTEMPTS = 5
# Decisions that leave new content to probe.
_PROBED = frozenset({Action.REGISTER, Action.REACTIVATE, Action.UPDATE})


class ConcurrentChange(RuntimeError):
    """The asset kept changing under us; the message is better retried than applied."""


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """What one notification record did."""

    change: ObjectChange
    decision: Decision
    asset_id: uuid.UUID | None = None


class BucketNotifications:
    """Applies the notifications of one bucket, a message per transaction."""

    def __init__(self, uow: UnitOfWorkFactory, probes: ProbeQueue, bucket: str) -> None:
        self._uow = uow
        self._probes = probes
        self.bucket = bucket

    async def apply(self, notification: Notification) -> list[AppliedChange]:
        """Apply every record of one notification in one transaction."""
        results: list[AppliedChange] = []
        async with self._uow() as uow:
            for change in notification.changes:
                skipped = self._skipped(change)
                results.append(skipped or await self._apply_change(uow, change))
            await uow.commit()
        self._probes.submit(
            r.asset_id for r in results if r.decision.action in _PROBED and r.asset_id
        )
        return results

    def _skipped(self, change: ObjectChange) -> AppliedChange | None:
        """A record the catalog does not apply to its assets, with why; None to apply it."""
        if change.bucket != self.bucket:
            return AppliedChange(change, Decision(Action.IGNORE, "other bucket"))
        if media_type_of(change.key) is None:
            return AppliedChange(change, Decision(Action.IGNORE, "unsupported type"))
        if (reason := key_refusal(change.key)) is not None:
            log.warning("not registering key %a: %s", change.key, reason)
            return AppliedChange(change, Decision(Action.REFUSE, reason))
        return None

    async def _apply_change(self, uow: UnitOfWork, change: ObjectChange) -> AppliedChange:
        for _ in range(CAS_ATTEMPTS):
            current = (await uow.assets.find(self.bucket, [change.key])).get(change.key)
            decision = decide(change, current)
            if decision.action is Action.IGNORE:
                return AppliedChange(change, decision, current.id if current else None)
            if current is None:
                asset_id = await self._insert(uow, change, decision)
            else:
                asset_id = await self._update(uow, change, decision, current)
            if asset_id is not None:
                return AppliedChange(change, decision, asset_id)
        raise ConcurrentChange(f"asset {self.bucket}/{change.key} kept changing; giving up")

    async def _insert(
        self, uow: UnitOfWork, change: ObjectChange, decision: Decision
    ) -> uuid.UUID | None:
        """Register the object, or remember its removal; None when a concurrent insert won."""
        now = utcnow()
        if decision.action is Action.TOMBSTONE:
            gone = ObjectInfo(change.key, 0, "")
            asset = new_asset(
                self.bucket, gone, sequencer=change.sequencer, status=DELETED, deleted_at=now
            )
        else:
            asset = new_asset(self.bucket, change.object, sequencer=change.sequencer, status=ACTIVE)
        if not await uow.assets.insert([asset]):
            return None
        if decision.action is Action.REGISTER:
            uow.outbox.add(messages.registered(asset, messages.for_asset(asset.id)))
        return asset.id

    async def _update(
        self, uow: UnitOfWork, change: ObjectChange, decision: Decision, current: AssetState
    ) -> uuid.UUID | None:
        """Write the decision on a known asset; None when a concurrent write won."""
        if current.id not in await uow.assets.apply([_asset_change(change, decision, current)]):
            return None
        if (message := _caused(change, decision, current)) is not None:
            uow.outbox.add(message)
        return current.id


def _asset_change(change: ObjectChange, decision: Decision, current: AssetState) -> AssetChange:
    if decision.action is Action.REMOVE:
        return removal(current, change.sequencer, utcnow())
    if decision.action is Action.TOUCH:
        return touch(current, change.sequencer)
    return content_change(current, change.object, change.sequencer)


def _caused(change: ObjectChange, decision: Decision, current: AssetState) -> Message | None:
    envelope = messages.for_asset(current.id)
    if decision.action is Action.REMOVE:
        return messages.removed(current, envelope)
    if decision.action is Action.REACTIVATE:
        return messages.registered(renewed(current, change.object), envelope)
    if decision.action is Action.UPDATE:
        return messages.updated(current, change.object, envelope)
    return None
